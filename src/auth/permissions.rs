//! Roles, permissions and scope restriction: pure functions of a caller's token (SPEC §4).

use std::fmt;

use super::AuthError;

/// One thing a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read packuments and tarballs.
    Read,
    /// Publish, deprecate, move dist-tags, change owners.
    Publish,
    /// Remove versions and packages.
    Unpublish,
    /// Everything, on every package.
    Admin,
}

impl Permission {
    /// The name used in JWT claims and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Publish => "publish",
            Self::Unpublish => "unpublish",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token's preset role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// read
    CiReadonly,
    /// read, publish
    CiPublish,
    /// read, publish, unpublish
    Maintainer,
    /// everything
    Admin,
}

impl Role {
    /// Parses `ci-readonly`, `ci-publish`, `maintainer` or `admin`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ci-readonly" => Some(Self::CiReadonly),
            "ci-publish" => Some(Self::CiPublish),
            "maintainer" => Some(Self::Maintainer),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CiReadonly => "ci-readonly",
            Self::CiPublish => "ci-publish",
            Self::Maintainer => "maintainer",
            Self::Admin => "admin",
        }
    }

    /// The permissions the role grants.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Self::CiReadonly => &[Read],
            Self::CiPublish => &[Read, Publish],
            Self::Maintainer => &[Read, Publish, Unpublish],
            Self::Admin => &[Read, Publish, Unpublish, Admin],
        }
    }

    /// Whether the role grants a permission.
    pub fn allows(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a user account is; it caps the roles of the tokens the user may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRole {
    /// May hold any token.
    Admin,
    /// May publish and unpublish the packages they maintain.
    Maintainer,
    /// May only read.
    Reader,
}

impl UserRole {
    /// Parses `admin`, `maintainer` or `reader`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "maintainer" => Some(Self::Maintainer),
            "reader" => Some(Self::Reader),
            _ => None,
        }
    }

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Maintainer => "maintainer",
            Self::Reader => "reader",
        }
    }

    /// The strongest token role this user may hold; login tokens get it.
    pub fn max_token_role(self) -> Role {
        match self {
            Self::Admin => Role::Admin,
            Self::Maintainer => Role::Maintainer,
            Self::Reader => Role::CiReadonly,
        }
    }
}

/// An authenticated caller: the user behind a valid token, and what the token allows.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user's id.
    pub user_id: i64,
    /// The user's login name.
    pub name: String,
    /// The user's e-mail.
    pub email: String,
    /// The token's id (`jti`).
    pub token_id: String,
    /// The token's role.
    pub role: Role,
    /// The token's scope restriction (`@acme`); empty means every scope.
    pub scopes: Vec<String>,
    /// The user's account role now: a registry admin account may write everywhere whatever scope
    /// its token names, but only with a token whose role allows the action.
    pub user_role: UserRole,
    /// Whether a registry admin or the operator issued the token for a service account: only
    /// such a CI token scoped to an org writes there without its user being a member.
    pub service_token: bool,
    /// Where the request came from (filled in by the edge), for the audit log.
    pub origin: Origin,
}

/// Where a request came from, as the edge saw it.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The client's IP address.
    pub ip: Option<String>,
    /// The request's `X-Request-Id`.
    pub request_id: Option<String>,
}

impl Caller {
    /// Requires a permission regardless of package.
    pub fn require(&self, permission: Permission) -> Result<(), AuthError> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                role: self.role,
                permission,
            })
        }
    }

    /// Requires a permission on a package, honouring the token's scope restriction.
    pub fn require_for(
        &self,
        permission: Permission,
        action: &'static str,
        package: &str,
    ) -> Result<(), AuthError> {
        self.require(permission)?;
        if self.scopes.is_empty() {
            return Ok(());
        }
        // A trusted-publishing token (`publish:<name>`, `stage:<name>`) publishes its one
        // package and does nothing else.
        if let Some(one) = self.scopes.iter().find_map(|s| s.split_once(':')) {
            return if one == ("publish", package) && action == "publish" {
                Ok(())
            } else {
                Err(AuthError::OutsideScope {
                    action,
                    scopes: self.scopes.join(", "),
                    wanted:
                        "a token of its own (this trusted-publishing token is for one package only)"
                            .to_owned(),
                    package: package.to_owned(),
                })
            };
        }
        let scope = package
            .strip_prefix('@')
            .and_then(|rest| rest.split_once('/'))
            .map(|(scope, _)| format!("@{scope}"));
        match scope {
            Some(scope) if self.scopes.contains(&scope) => Ok(()),
            scope => Err(AuthError::OutsideScope {
                action,
                scopes: self.scopes.join(", "),
                wanted: scope.unwrap_or_else(|| "no scope (an unrestricted token)".to_owned()),
                package: package.to_owned(),
            }),
        }
    }

    /// Whether the caller may act on every package (admin tokens).
    pub fn is_admin(&self) -> bool {
        self.role.allows(Permission::Admin)
    }

    /// Whether the caller writes under `scope` (`@acme`) whoever owns it, org or user: a registry
    /// admin (by token or by account), or a CI token a registry admin or the operator issued for a
    /// service account and scoped to it. Everyone else needs the owner's say.
    pub fn overrides_scope_owner(&self, scope: &str) -> bool {
        let service_token = self.service_token
            && self.role < Role::Maintainer
            && self.scopes.iter().any(|s| s == scope);
        self.is_admin() || self.user_role == UserRole::Admin || service_token
    }

    /// Whether the token's scope restriction covers `scope` (`@acme`); an unrestricted token
    /// covers every scope.
    pub fn covers_scope(&self, scope: &str) -> bool {
        self.scopes.is_empty() || self.scopes.iter().any(|s| s == scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, scopes: &[&str]) -> Caller {
        Caller {
            user_id: 1,
            name: "ci".into(),
            email: String::new(),
            token_id: "t".into(),
            role,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            user_role: UserRole::Maintainer,
            service_token: false,
            origin: Origin::default(),
        }
    }

    #[test]
    fn roles_grant_their_preset_permissions() {
        assert!(Role::CiReadonly.allows(Permission::Read));
        assert!(!Role::CiReadonly.allows(Permission::Publish));
        assert!(Role::CiPublish.allows(Permission::Publish));
        assert!(!Role::CiPublish.allows(Permission::Unpublish));
        assert!(Role::Maintainer.allows(Permission::Unpublish));
        assert!(!Role::Maintainer.allows(Permission::Admin));
        assert!(Role::Admin.allows(Permission::Admin));
    }

    #[test]
    fn a_scoped_token_publishes_only_under_its_scope() {
        let ci = caller(Role::CiPublish, &["@acme"]);
        assert!(
            ci.require_for(Permission::Publish, "publish", "@acme/b")
                .is_ok()
        );
        let err = ci
            .require_for(Permission::Publish, "publish", "@other/b")
            .unwrap_err();
        assert!(err.to_string().contains("@acme"), "{err}");
        assert!(err.to_string().contains("@other"), "{err}");
        assert!(
            ci.require_for(Permission::Publish, "publish", "left-pad")
                .is_err()
        );
    }

    #[test]
    fn a_trusted_publishing_token_only_publishes_its_one_package() {
        let ci = caller(Role::CiPublish, &["publish:tp-lib"]);
        assert!(
            ci.require_for(Permission::Publish, "publish", "tp-lib")
                .is_ok()
        );
        assert!(
            ci.require_for(Permission::Publish, "publish", "tp-other")
                .is_err()
        );
        assert!(
            ci.require_for(Permission::Publish, "publish", "tp-lib-2")
                .is_err()
        );
        assert!(
            ci.require_for(Permission::Publish, "change dist-tags", "tp-lib")
                .is_err()
        );
        assert!(
            ci.require_for(Permission::Publish, "deprecate", "tp-lib")
                .is_err()
        );
        assert!(!ci.covers_scope("@acme"));
        let staged = caller(Role::CiPublish, &["stage:tp-lib"]);
        assert!(
            staged
                .require_for(Permission::Publish, "publish", "tp-lib")
                .is_err()
        );
    }

    #[test]
    fn an_unscoped_token_publishes_anywhere() {
        let ci = caller(Role::CiPublish, &[]);
        assert!(
            ci.require_for(Permission::Publish, "publish", "left-pad")
                .is_ok()
        );
        assert!(
            ci.require_for(Permission::Unpublish, "unpublish", "left-pad")
                .is_err()
        );
    }
}
