//! A configured provider: where its endpoints are, which scopes it is asked for, and the
//! `oauth2` client that speaks to it.

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, ClientId, ClientSecret, EndpointNotSet, EndpointSet, ExtraTokenFields,
    RedirectUrl, StandardRevocableToken, StandardTokenResponse, TokenUrl,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::http::Http;
use super::{OAuthError, github, oidc};
use crate::config::{Protocol, ProviderConfig};

/// Scopes asked of OpenID Connect providers.
const OIDC_SCOPES: &[&str] = &["openid", "profile", "email"];

/// Where a provider's endpoints are and how the client authenticates.
pub(super) struct Endpoints {
    pub(super) authorize: String,
    pub(super) token: String,
    pub(super) auth_type: AuthType,
}

/// The ID token of an OpenID Connect token answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

pub(super) type TokenAnswer = StandardTokenResponse<IdTokenField, BasicTokenType>;

pub(super) type Client = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A configured provider and how it is spoken to.
pub(super) struct Provider {
    pub(super) config: ProviderConfig,
    pub(super) kind: Kind,
}

pub(super) enum Kind {
    /// OpenID Connect, with the issuer's cached documents.
    Oidc(oidc::Issuer),
    /// GitHub's OAuth apps.
    GitHub {
        authorize_url: String,
        token_url: String,
        api_url: String,
    },
}

impl Provider {
    /// The provider of `config`; nothing is fetched until it is used.
    pub(super) fn new(config: &ProviderConfig) -> Self {
        let kind = match &config.protocol {
            Protocol::Oidc { issuer } => Kind::Oidc(oidc::Issuer::new(issuer.clone())),
            Protocol::GitHub {
                authorize_url,
                token_url,
                api_url,
            } => Kind::GitHub {
                authorize_url: authorize_url.clone(),
                token_url: token_url.clone(),
                api_url: api_url.clone(),
            },
        };
        Self {
            config: config.clone(),
            kind,
        }
    }

    pub(super) async fn endpoints(&self, http: &Http) -> Result<Endpoints, OAuthError> {
        match &self.kind {
            Kind::Oidc(issuer) => issuer.endpoints(http).await.map_err(|f| f.at(&self.config)),
            Kind::GitHub {
                authorize_url,
                token_url,
                ..
            } => Ok(Endpoints {
                authorize: authorize_url.clone(),
                token: token_url.clone(),
                // GitHub documents the client secret as a form field.
                auth_type: AuthType::RequestBody,
            }),
        }
    }

    pub(super) fn scopes(&self) -> &'static [&'static str] {
        match self.kind {
            Kind::Oidc(_) => OIDC_SCOPES,
            Kind::GitHub { .. } => github::SCOPES,
        }
    }

    pub(super) fn client(
        &self,
        endpoints: &Endpoints,
        redirect_uri: &str,
    ) -> Result<Client, OAuthError> {
        let invalid = |what: &str, err: oauth2::url::ParseError| {
            OAuthError::Internal(format!("{} {what} URL: {err}", self.config.display_name))
        };
        let mut client = oauth2::Client::new(ClientId::new(self.config.client_id.clone()))
            .set_auth_uri(
                AuthUrl::new(endpoints.authorize.clone())
                    .map_err(|e| invalid("authorization", e))?,
            )
            .set_token_uri(TokenUrl::new(endpoints.token.clone()).map_err(|e| invalid("token", e))?)
            .set_redirect_uri(
                RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| invalid("redirect", e))?,
            )
            .set_auth_type(endpoints.auth_type.clone());
        if let Some(secret) = &self.config.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()));
        }
        Ok(client)
    }
}
