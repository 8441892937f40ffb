//! Organisations: the OIN that identifies them and the type that places them in one of the
//! rings of the regional route map ("Samen Veilig").

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The 20-digit organisatie-identificatienummer, as in the serialNumber of a PKIoverheid
/// certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oin([u8; 20]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OinError {
    #[error("is required")]
    Missing,
    #[error("must be exactly 20 digits")]
    Format,
}

impl Oin {
    pub fn parse(input: &str) -> Result<Oin, OinError> {
        let bytes = input.as_bytes();
        if bytes.is_empty() {
            return Err(OinError::Missing);
        }
        if bytes.len() != 20 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(OinError::Format);
        }
        let mut oin = [0u8; 20];
        oin.copy_from_slice(bytes);
        Ok(Oin(oin))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl FromStr for Oin {
    type Err = OinError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Oin::parse(s)
    }
}

impl fmt::Display for Oin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Oin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oin({})", self.as_str())
    }
}

impl Serialize for Oin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Oin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Oin::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The rings of the route map, from the family outwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ring {
    /// Verenigingen, sportclubs, geloofsgemeenschappen.
    ActiviteitenInDeBuurt,
    /// School, huisarts, bibliotheek, CJG, GGD, maatschappelijk werk.
    PlekkenVoorIedereen,
    /// Huishoudelijke hulp, uitkering, jeugdzorg, slachtofferhulp, reclassering.
    PlekkenVoorWieHetNodigHeeft,
    /// Het lokale team: de spin in het web.
    SpinInHetWeb,
    /// Veilig Thuis.
    Melding,
    /// Politie, OM, opvang.
    StoppenEnDuurzaamOplossen,
    /// The federation's own infrastructure (authority, index, pseudonym service); not a ring
    /// of the map, and never a party to a signal.
    Federatie,
}

impl Ring {
    pub fn label(self) -> &'static str {
        match self {
            Ring::ActiviteitenInDeBuurt => "activiteiten in de buurt",
            Ring::PlekkenVoorIedereen => "plekken voor iedereen",
            Ring::PlekkenVoorWieHetNodigHeeft => "plekken voor wie het (tijdelijk) nodig heeft",
            Ring::SpinInHetWeb => "spin in het web",
            Ring::Melding => "melding",
            Ring::StoppenEnDuurzaamOplossen => "stoppen en duurzaam oplossen",
            Ring::Federatie => "federatie",
        }
    }
}

macro_rules! closed_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable name used in configuration, records and the audit log.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::domain::UnknownName {
                        kind: stringify!($name),
                        allowed: &[$($text),+],
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use closed_enum;

closed_enum! {
    /// The kinds of organisation that can run a node.
    OrgType {
        Association = "association",
        SportsClub = "sports_club",
        FaithCommunity = "faith_community",
        School = "school",
        Huisarts = "huisarts",
        Library = "library",
        Cjg = "cjg",
        Ggd = "ggd",
        SocialWork = "social_work",
        HomeCare = "home_care",
        BenefitsAgency = "benefits_agency",
        YouthCare = "youth_care",
        VictimSupport = "victim_support",
        Probation = "probation",
        LocalTeam = "local_team",
        VeiligThuis = "veilig_thuis",
        Police = "police",
        PublicProsecutor = "public_prosecutor",
        Shelter = "shelter",
        FederationService = "federation_service",
    }
}

impl OrgType {
    pub fn ring(self) -> Ring {
        use OrgType::*;
        match self {
            Association | SportsClub | FaithCommunity => Ring::ActiviteitenInDeBuurt,
            School | Huisarts | Library | Cjg | Ggd | SocialWork => Ring::PlekkenVoorIedereen,
            HomeCare | BenefitsAgency | YouthCare | VictimSupport | Probation => {
                Ring::PlekkenVoorWieHetNodigHeeft
            }
            LocalTeam => Ring::SpinInHetWeb,
            VeiligThuis => Ring::Melding,
            Police | PublicProsecutor | Shelter => Ring::StoppenEnDuurzaamOplossen,
            FederationService => Ring::Federatie,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oin_is_twenty_digits() {
        assert!(Oin::parse("00000001003214345000").is_ok());
        assert_eq!(Oin::parse(""), Err(OinError::Missing));
        assert_eq!(Oin::parse("0000000100321434500"), Err(OinError::Format));
        assert_eq!(Oin::parse("000000010032143450001"), Err(OinError::Format));
        assert_eq!(Oin::parse("0000000100321434500x"), Err(OinError::Format));
    }

    #[test]
    fn every_org_type_has_a_ring_and_the_map_is_right() {
        let expected = [
            (OrgType::SportsClub, Ring::ActiviteitenInDeBuurt),
            (OrgType::School, Ring::PlekkenVoorIedereen),
            (OrgType::Huisarts, Ring::PlekkenVoorIedereen),
            (OrgType::Ggd, Ring::PlekkenVoorIedereen),
            (OrgType::YouthCare, Ring::PlekkenVoorWieHetNodigHeeft),
            (OrgType::Probation, Ring::PlekkenVoorWieHetNodigHeeft),
            (OrgType::LocalTeam, Ring::SpinInHetWeb),
            (OrgType::VeiligThuis, Ring::Melding),
            (OrgType::Police, Ring::StoppenEnDuurzaamOplossen),
            (OrgType::Shelter, Ring::StoppenEnDuurzaamOplossen),
        ];
        for (org, ring) in expected {
            assert_eq!(org.ring(), ring, "{org}");
        }
        for org in OrgType::ALL {
            assert_eq!(org.as_str().parse::<OrgType>().unwrap(), *org);
        }
    }

    #[test]
    fn unknown_names_list_the_allowed_ones() {
        let err = "kapper".parse::<OrgType>().unwrap_err();
        assert!(err.to_string().contains("school"), "{err}");
    }
}
