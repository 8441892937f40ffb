//! Doelbinding: the closed lists of purposes, legal bases and roles.

use serde::{Deserialize, Serialize};

use super::org::closed_enum;

closed_enum! {
    /// Every request that reads or discloses data names exactly one purpose.
    Purpose {
        Registration = "registration",
        MatchNotification = "match_notification",
        LocalTeamCoordination = "local_team_coordination",
        VtTriage = "vt_triage",
        MdaCaseConference = "mda_case_conference",
        WaakvlamFollowUp = "waakvlam_follow_up",
        Emergency = "emergency",
        SubjectAccess = "subject_access",
        AuditReview = "audit_review",
    }
}

closed_enum! {
    LegalBasis {
        Jeugdwet7141 = "jeugdwet_7.1.4.1",
        Wmo526 = "wmo_2015_5.2.6",
        Wmo411 = "wmo_2015_4.1.1",
        WetVerplichteMeldcode = "wet_verplichte_meldcode",
        Avg61c = "avg_6.1.c",
        Avg61d = "avg_6.1.d",
        Avg61e = "avg_6.1.e",
        Avg15 = "avg_15",
    }
}

impl LegalBasis {
    pub fn citation(self) -> &'static str {
        match self {
            LegalBasis::Jeugdwet7141 => "Jeugdwet art. 7.1.4.1 (verwijsindex)",
            LegalBasis::Wmo526 => "Wmo 2015 art. 5.2.6 (meldrecht)",
            LegalBasis::Wmo411 => "Wmo 2015 art. 4.1.1 (taken Veilig Thuis)",
            LegalBasis::WetVerplichteMeldcode => "Wet verplichte meldcode",
            LegalBasis::Avg61c => "AVG art. 6 lid 1 sub c (wettelijke verplichting)",
            LegalBasis::Avg61d => "AVG art. 6 lid 1 sub d (vitaal belang)",
            LegalBasis::Avg61e => "AVG art. 6 lid 1 sub e (publieke taak)",
            LegalBasis::Avg15 => "AVG art. 15 (recht op inzage)",
        }
    }
}

impl Purpose {
    /// The legal basis a purpose rests on for calls within one node. The federation policy
    /// (in the signed directory) decides it for exchanges between nodes.
    pub fn local_legal_basis(self) -> LegalBasis {
        match self {
            Purpose::Registration => LegalBasis::WetVerplichteMeldcode,
            Purpose::MatchNotification => LegalBasis::Jeugdwet7141,
            Purpose::LocalTeamCoordination => LegalBasis::Avg61e,
            Purpose::VtTriage | Purpose::MdaCaseConference => LegalBasis::Wmo411,
            Purpose::WaakvlamFollowUp => LegalBasis::Avg61e,
            Purpose::Emergency => LegalBasis::Avg61d,
            Purpose::SubjectAccess => LegalBasis::Avg15,
            Purpose::AuditReview => LegalBasis::Avg61c,
        }
    }
}

closed_enum! {
    /// What a principal may do at its own node.
    Role {
        Signaler = "signaler",
        Coordinator = "coordinator",
        Analyst = "analyst",
        PrivacyOfficer = "privacy_officer",
        Admin = "admin",
    }
}
