//! Test support: the in-process server, real client processes, package fixtures, a real S3
//! server and a real PostgreSQL.

pub mod browser;
pub mod clients;
pub mod fixtures;
pub mod haproxy;
pub mod install;
pub mod oidc;
pub mod packuments;
pub mod postgres;
pub mod publish_body;
pub mod s3;
pub mod serve_process;
pub mod server;
pub mod sigstore;
pub mod stores;

/// Runs `async fn scenario(storage: Storage)` as two tests, `scenario::on_fs` and
/// `scenario::on_s3`; extra arguments go to `#[tokio::test(..)]`.
macro_rules! on_each_storage {
    ($scenario:ident $(, $($arg:tt)+)?) => {
        mod $scenario {
            #[tokio::test$(($($arg)+))?]
            async fn on_fs() {
                super::$scenario($crate::support::server::Storage::Fs).await;
            }

            #[tokio::test$(($($arg)+))?]
            async fn on_s3() {
                super::$scenario($crate::support::server::Storage::S3).await;
            }
        }
    };
}
pub(crate) use on_each_storage;
