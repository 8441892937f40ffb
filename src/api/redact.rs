//! Debug for the generated requests that carry a BSN: the BSN fields print as `***`.

use std::fmt;

use super::proto;

fn redacted(value: &str) -> &'static str {
    if value.is_empty() { "" } else { "***" }
}

impl fmt::Debug for proto::RelatedPerson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelatedPerson")
            .field("bsn", &redacted(&self.bsn))
            .field("relation", &self.relation)
            .finish()
    }
}

impl fmt::Debug for proto::RegisterRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterRequest")
            .field("subject_bsn", &redacted(&self.subject_bsn))
            .field("related", &self.related)
            .field("category", &self.category)
            .field("severity", &self.severity)
            .field("meldcode_step", &self.meldcode_step)
            .field("contact_point", &self.contact_point)
            .finish()
    }
}

impl fmt::Debug for proto::ListRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListRequest")
            .field("person_bsn", &self.person_bsn.as_deref().map(redacted))
            .field("category", &self.category)
            .field("severity", &self.severity)
            .field("meldcode_step", &self.meldcode_step)
            .field("page_size", &self.page_size)
            .field("page_token", &self.page_token)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for proto::AuditSearchRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSearchRequest")
            .field("subject_bsn", &self.subject_bsn.as_deref().map(redacted))
            .field("subject_pseudonym", &self.subject_pseudonym)
            .field("action", &self.action)
            .field("page_size", &self.page_size)
            .field("page_token", &self.page_token)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for proto::LinkedSignalsRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkedSignalsRequest")
            .field("purpose", &self.purpose)
            .field("person_bsn", &redacted(&self.person_bsn))
            .field("household", &self.household)
            .finish()
    }
}

impl fmt::Debug for proto::BreakGlassRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakGlassRequest")
            .field("person_bsn", &redacted(&self.person_bsn))
            .field("reason", &self.reason)
            .finish()
    }
}

impl fmt::Debug for proto::CaseRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaseRequest")
            .field("person_bsn", &redacted(&self.person_bsn))
            .finish()
    }
}

impl fmt::Debug for proto::StartWaakvlamLocalRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartWaakvlamLocalRequest")
            .field("person_bsn", &redacted(&self.person_bsn))
            .field("days", &self.days)
            .finish()
    }
}

impl fmt::Debug for proto::ReportRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportRequest")
            .field("signal_id", &self.signal_id)
            .field("subject_bsn", &redacted(&self.subject_bsn))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_never_print_a_bsn() {
        let request = proto::RegisterRequest {
            subject_bsn: "111222333".into(),
            related: vec![proto::RelatedPerson {
                bsn: "123456782".into(),
                relation: 1,
            }],
            ..Default::default()
        };
        let printed = format!(
            "{request:?} {:?}",
            proto::ListRequest {
                person_bsn: Some("111222333".into()),
                ..Default::default()
            }
        );
        assert!(!printed.contains("111222333"), "{printed}");
        assert!(!printed.contains("123456782"), "{printed}");
        assert!(printed.contains("***"));
    }
}
