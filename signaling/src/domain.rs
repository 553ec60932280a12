//! The relay's domain records: centres, service categories, windows, clerks, extension points
//! and devices, as the store keeps them.

use std::fmt;
use std::str::FromStr;

use protocol::queue::WindowMode;

/// 受理中心
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Centre {
    pub id: String,
    pub name: String,
    pub district: String,
    pub street: String,
}

/// What a staff member may do. A person may hold several roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Serves tickets at a window (窗口工作人员).
    Clerk,
    /// Sees statistics, recordings and follow-ups of the centre (值班长/主管).
    Supervisor,
    /// Keeps the registry of extension points and devices (远程受理柜台维护).
    RegistryOperator,
    /// Installs and inspects kiosks (运维/巡检).
    Technician,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Clerk,
        Role::Supervisor,
        Role::RegistryOperator,
        Role::Technician,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Clerk => "clerk",
            Role::Supervisor => "supervisor",
            Role::RegistryOperator => "registry_operator",
            Role::Technician => "technician",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (expected one of clerk, supervisor, registry_operator, technician)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// Parses a comma-separated role list as stored.
pub fn parse_roles(s: &str) -> Result<Vec<Role>, UnknownRole> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(str::parse)
        .collect()
}

pub fn format_roles(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A staff account of a centre.
#[derive(Clone, PartialEq, Eq)]
pub struct Clerk {
    pub id: String,
    pub centre_id: String,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub roles: Vec<Role>,
    pub active: bool,
}

impl Clerk {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

impl fmt::Debug for Clerk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clerk")
            .field("id", &self.id)
            .field("centre_id", &self.centre_id)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// A window as configured (who is signed in lives in the queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRecord {
    pub id: String,
    pub centre_id: String,
    pub name: String,
    pub mode: WindowMode,
    pub category_ids: Vec<String>,
    pub clerk_id: Option<String>,
    pub clerk_name: Option<String>,
}

pub fn window_mode_str(mode: WindowMode) -> &'static str {
    match mode {
        WindowMode::OnSite => "on_site",
        WindowMode::Remote => "remote",
        WindowMode::Combined => "combined",
    }
}

pub fn parse_window_mode(s: &str) -> Option<WindowMode> {
    Some(match s {
        "on_site" => WindowMode::OnSite,
        "remote" => WindowMode::Remote,
        "combined" => WindowMode::Combined,
        _ => return None,
    })
}

/// 事项类别
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CategoryRecord {
    pub id: String,
    pub centre_id: String,
    pub prefix: String,
    pub name: String,
    pub sort_order: i64,
}

/// 延伸点
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionPoint {
    pub id: String,
    pub centre_id: String,
    pub name: String,
    pub address: String,
    pub phone: String,
    /// The hours as people read them (as on the registry forms).
    pub service_hours: String,
    /// The hours as data; when set, remote tickets are taken only while open.
    pub hours: Option<protocol::hours::ServiceHours>,
    pub status: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// The kiosk at an extension point.
    Kiosk,
    /// The centre's own ticket machine (现场取号机), which issues on-site tickets over HTTP.
    TicketMachine,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Kiosk => "kiosk",
            DeviceKind::TicketMachine => "ticket_machine",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "kiosk" => Some(DeviceKind::Kiosk),
            "ticket_machine" => Some(DeviceKind::TicketMachine),
            _ => None,
        }
    }
}

/// A device with its own credential.
#[derive(Clone, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub centre_id: String,
    pub extension_point_id: Option<String>,
    pub kind: DeviceKind,
    pub name: String,
    pub secret_hash: String,
    pub active: bool,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("centre_id", &self.centre_id)
            .field("kind", &self.kind)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_reject_unknown() {
        let roles = parse_roles("clerk,supervisor").expect("valid roles");
        assert_eq!(roles, vec![Role::Clerk, Role::Supervisor]);
        assert_eq!(format_roles(&roles), "clerk,supervisor");
        assert!(parse_roles("clerk,root").is_err());
    }
}
