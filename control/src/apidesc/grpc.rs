//! gRPC services from a protobuf `FileDescriptorSet` (what `buf build -o
//! x.binpb` or `protoc --include_imports --descriptor_set_out` writes),
//! decoded with prost-types and reduced to the services and their methods.

use std::collections::BTreeMap;
use std::fmt;

use prost::Message as _;
use prost_types::method_options::IdempotencyLevel;
use prost_types::FileDescriptorSet;
use thiserror::Error;

use super::list;

/// What a method's descriptor says of its side effects
/// (`option idempotency_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Idempotency {
    /// Not set (`IDEMPOTENCY_UNKNOWN`).
    Unknown,
    /// `NO_SIDE_EFFECTS`: a read; implies idempotent.
    NoSideEffects,
    /// `IDEMPOTENT`: may have side effects, repeating it changes nothing more.
    Idempotent,
}

impl Idempotency {
    /// Whether a method of this level is selected by `wanted`:
    /// `NO_SIDE_EFFECTS` selects only itself, `IDEMPOTENT` selects
    /// `IDEMPOTENT` and `NO_SIDE_EFFECTS` (which implies idempotent).
    pub fn satisfies(self, wanted: Idempotency) -> bool {
        match wanted {
            Self::Unknown => true,
            Self::NoSideEffects => self == Self::NoSideEffects,
            Self::Idempotent => matches!(self, Self::NoSideEffects | Self::Idempotent),
        }
    }

    /// The protobuf name (`NO_SIDE_EFFECTS`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "IDEMPOTENCY_UNKNOWN",
            Self::NoSideEffects => "NO_SIDE_EFFECTS",
            Self::Idempotent => "IDEMPOTENT",
        }
    }
}

impl fmt::Display for Idempotency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One method of a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GrpcMethod {
    /// The method's name (`GetItem`).
    pub name: String,
    /// Its idempotency level.
    pub idempotency: Idempotency,
}

/// The services of a descriptor set: full name (`shop.inventory.v1.Inventory`)
/// → methods sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrpcApi {
    services: BTreeMap<String, Vec<GrpcMethod>>,
}

/// Why a `grpc` entry's names do not fit the descriptors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectError {
    /// The descriptors have no such service.
    #[error("the descriptors have no service {service} (has: {})", list(has))]
    UnknownService {
        /// The service named.
        service: String,
        /// The services there are.
        has: Vec<String>,
    },
    /// The service has no such method.
    #[error("{service} has no method {method} (has: {})", list(has))]
    UnknownMethod {
        /// Its index in `methods`.
        index: usize,
        /// The service.
        service: String,
        /// The method named.
        method: String,
        /// The methods there are.
        has: Vec<String>,
    },
    /// A method named is not of the idempotency level asked for.
    #[error("{service}/{method} is {level}, not {wanted}")]
    NotAtLevel {
        /// Its index in `methods`.
        index: usize,
        /// The service.
        service: String,
        /// The method.
        method: String,
        /// Its level.
        level: Idempotency,
        /// The level asked for.
        wanted: Idempotency,
    },
    /// `["*"]` with a level selects no method.
    #[error("{service} has no method that is {wanted} (has: {})", list(has))]
    NoneAtLevel {
        /// The service.
        service: String,
        /// The level asked for.
        wanted: Idempotency,
        /// Its methods with their levels.
        has: Vec<String>,
    },
}

impl SelectError {
    /// The field of the `grpc` entry at fault: `service`, `methods[i]` or
    /// `idempotencyLevel`.
    pub fn field(&self) -> String {
        match self {
            Self::UnknownService { .. } => "service".into(),
            Self::UnknownMethod { index, .. } | Self::NotAtLevel { index, .. } => format!("methods[{index}]"),
            Self::NoneAtLevel { .. } => "idempotencyLevel".into(),
        }
    }
}

impl GrpcApi {
    /// Decodes a serialized `FileDescriptorSet`. Services of the same full
    /// name in several files (a file included twice) are merged.
    pub fn decode(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let set = FileDescriptorSet::decode(bytes)?;
        let mut services: BTreeMap<String, Vec<GrpcMethod>> = BTreeMap::new();
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let name = service.name.unwrap_or_default();
                let full = if package.is_empty() {
                    name
                } else {
                    format!("{package}.{name}")
                };
                let methods = services.entry(full).or_default();
                for m in service.method {
                    let level = m
                        .options
                        .and_then(|o| o.idempotency_level)
                        .and_then(|l| IdempotencyLevel::try_from(l).ok());
                    methods.push(GrpcMethod {
                        name: m.name.unwrap_or_default(),
                        idempotency: match level {
                            Some(IdempotencyLevel::NoSideEffects) => Idempotency::NoSideEffects,
                            Some(IdempotencyLevel::Idempotent) => Idempotency::Idempotent,
                            Some(IdempotencyLevel::IdempotencyUnknown) | None => Idempotency::Unknown,
                        },
                    });
                }
            }
        }
        for methods in services.values_mut() {
            methods.sort();
            methods.dedup_by(|a, b| a.name == b.name);
        }
        Ok(Self { services })
    }

    /// Full service names, sorted.
    pub fn services(&self) -> impl Iterator<Item = &str> + '_ {
        self.services.keys().map(String::as_str)
    }

    /// A service's methods, sorted by name.
    pub fn methods(&self, service: &str) -> Option<&[GrpcMethod]> {
        self.services.get(service).map(Vec::as_slice)
    }

    /// The methods a `grpc` entry admits: `["*"]` expands to every method
    /// of `service` (sorted; with `wanted`, those of that level); named
    /// methods are checked to exist (and, with `wanted`, to be of that level)
    /// and returned as written. A `*` beside other names is returned as
    /// written, for the engine to refuse.
    pub fn select(
        &self,
        service: &str,
        methods: &[String],
        wanted: Option<Idempotency>,
    ) -> Result<Vec<String>, SelectError> {
        let Some(all) = self.methods(service) else {
            return Err(SelectError::UnknownService {
                service: service.into(),
                has: self.services().map(str::to_string).collect(),
            });
        };
        let wanted = wanted.unwrap_or(Idempotency::Unknown);
        if let [only] = methods {
            if only == "*" {
                let out: Vec<String> = all
                    .iter()
                    .filter(|m| m.idempotency.satisfies(wanted))
                    .map(|m| m.name.clone())
                    .collect();
                if out.is_empty() {
                    return Err(SelectError::NoneAtLevel {
                        service: service.into(),
                        wanted,
                        has: all.iter().map(|m| format!("{} {}", m.name, m.idempotency)).collect(),
                    });
                }
                return Ok(out);
            }
        }
        for (index, method) in methods.iter().enumerate() {
            if method == "*" {
                continue;
            }
            let Some(found) = all.iter().find(|m| m.name == *method) else {
                return Err(SelectError::UnknownMethod {
                    index,
                    service: service.into(),
                    method: method.clone(),
                    has: all.iter().map(|m| m.name.clone()).collect(),
                });
            };
            if !found.idempotency.satisfies(wanted) {
                return Err(SelectError::NotAtLevel {
                    index,
                    service: service.into(),
                    method: method.clone(),
                    level: found.idempotency,
                    wanted,
                });
            }
        }
        Ok(methods.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `control/tests/data/apidesc/inventory.proto`, compiled.
    const INVENTORY: &[u8] = include_bytes!("../../tests/data/apidesc/inventory.binpb");
    const SERVICE: &str = "shop.inventory.v1.Inventory";

    fn api() -> GrpcApi {
        GrpcApi::decode(INVENTORY).unwrap()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn services_and_methods_come_from_the_descriptor_set() {
        let api = api();
        // Imports (empty.proto, timestamp.proto) have no services.
        assert_eq!(
            api.services().collect::<Vec<_>>(),
            ["shop.inventory.v1.Admin", "shop.inventory.v1.Inventory"]
        );
        let methods: Vec<(&str, Idempotency)> = api
            .methods(SERVICE)
            .unwrap()
            .iter()
            .map(|m| (m.name.as_str(), m.idempotency))
            .collect();
        assert_eq!(
            methods,
            [
                ("GetItem", Idempotency::NoSideEffects),
                ("ListItems", Idempotency::NoSideEffects),
                ("Reserve", Idempotency::Idempotent),
            ]
        );
        // Declared Restock, Purge: sorted.
        let admin: Vec<&str> = api
            .methods("shop.inventory.v1.Admin")
            .unwrap()
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(admin, ["Purge", "Restock"]);
    }

    #[test]
    fn star_expands_to_every_method_sorted_and_by_level() {
        let api = api();
        let star = names(&["*"]);
        assert_eq!(
            api.select(SERVICE, &star, None).unwrap(),
            ["GetItem", "ListItems", "Reserve"]
        );
        assert_eq!(
            api.select(SERVICE, &star, Some(Idempotency::NoSideEffects)).unwrap(),
            ["GetItem", "ListItems"]
        );
        // IDEMPOTENT includes NO_SIDE_EFFECTS.
        assert_eq!(
            api.select(SERVICE, &star, Some(Idempotency::Idempotent)).unwrap(),
            ["GetItem", "ListItems", "Reserve"]
        );
    }

    #[test]
    fn named_methods_are_checked_and_kept_as_written() {
        let api = api();
        assert_eq!(
            api.select(SERVICE, &names(&["ListItems", "GetItem"]), None).unwrap(),
            ["ListItems", "GetItem"]
        );
        let e = api.select(SERVICE, &names(&["GetItem", "Reservee"]), None).unwrap_err();
        assert_eq!(e.field(), "methods[1]");
        assert_eq!(
            e.to_string(),
            "shop.inventory.v1.Inventory has no method Reservee (has: GetItem, ListItems, Reserve)"
        );
        // Method names are case-sensitive, as gRPC paths are.
        let e = api.select(SERVICE, &names(&["getItem"]), None).unwrap_err();
        assert_eq!(e.field(), "methods[0]");
    }

    #[test]
    fn unknown_services_list_what_exists() {
        let e = api()
            .select("shop.inventory.v1.Inventry", &names(&["*"]), None)
            .unwrap_err();
        assert_eq!(e.field(), "service");
        assert_eq!(
            e.to_string(),
            "the descriptors have no service shop.inventory.v1.Inventry \
             (has: shop.inventory.v1.Admin, shop.inventory.v1.Inventory)"
        );
        // The short name is not the full name.
        assert!(api().select("Inventory", &names(&["*"]), None).is_err());
    }

    #[test]
    fn levels_are_enforced_on_named_methods_and_an_empty_expansion_is_an_error() {
        let api = api();
        let e = api
            .select(
                SERVICE,
                &names(&["GetItem", "Reserve"]),
                Some(Idempotency::NoSideEffects),
            )
            .unwrap_err();
        assert_eq!(e.field(), "methods[1]");
        assert_eq!(
            e.to_string(),
            "shop.inventory.v1.Inventory/Reserve is IDEMPOTENT, not NO_SIDE_EFFECTS"
        );
        let e = api
            .select("shop.inventory.v1.Admin", &names(&["*"]), Some(Idempotency::Idempotent))
            .unwrap_err();
        assert_eq!(e.field(), "idempotencyLevel");
        assert_eq!(
            e.to_string(),
            "shop.inventory.v1.Admin has no method that is IDEMPOTENT \
             (has: Purge IDEMPOTENCY_UNKNOWN, Restock IDEMPOTENCY_UNKNOWN)"
        );
    }

    #[test]
    fn bytes_that_are_not_a_descriptor_set_are_refused() {
        assert!(GrpcApi::decode(b"openapi: 3.0.0\n").is_err());
        assert!(GrpcApi::decode(&INVENTORY[..INVENTORY.len() - 7]).is_err());
        // An empty message is a valid, empty set.
        assert_eq!(GrpcApi::decode(b"").unwrap().services().count(), 0);
    }
}
