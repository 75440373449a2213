//! The Helm chart in helm/packr, linted and rendered by Helm's own engine (`helm lint --strict`
//! and `helm template` as Helm v4's Go SDK runs them), every manifest checked against the
//! Kubernetes API schemas of 1.29 and 1.37, then read for what Packr needs: one SQLite instance
//! on a volume by default, stateless instances on PostgreSQL and S3 otherwise.
//!
//! The helm binary is in none of the package registries this machine reaches; the SDK is, in the
//! PyPI wheel helm-python-sdk, installed once into `target/helm-sdk/` with kubernetes-validate
//! (the schemas) and PyYAML. `support/helm_render.py` drives them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{Value, json};

use crate::support::install::{install_once, run};

/// What the test installs from PyPI, pinned; changing it reinstalls.
const PACKAGES: &[&str] = &[
    "helm-python-sdk==0.2.2",
    "kubernetes-validate==1.37.0",
    "PyYAML==6.0.4",
];

/// The Kubernetes releases every manifest must be valid for.
const KUBERNETES: &[&str] = &["1.29.0", "1.37.0"];

fn python() -> PathBuf {
    let dir = install_once("helm-sdk", &PACKAGES.join(" "), |dir| {
        run(Command::new("python3")
            .args(["-m", "venv"])
            .arg(dir.join("venv")))?;
        run(Command::new(dir.join("venv/bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PACKAGES))
    })
    .expect("installing Helm's SDK from PyPI");
    dir.join("venv/bin/python")
}

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("helm/packr")
}

/// The chart rendered with `values` (release `demo`, namespace `packr`).
struct Rendered {
    manifests: Vec<Value>,
}

/// Lints and renders the chart; panics on a lint warning or error, on a manifest that is not
/// valid for a Kubernetes release, or when the chart refuses the values.
fn render(values: &Value) -> Rendered {
    match try_render(values) {
        Ok(rendered) => rendered,
        Err(message) => panic!("the chart refused {values}: {message}"),
    }
}

/// The chart's refusal of `values` (a `fail` in a template), or the rendered chart.
fn try_render(values: &Value) -> Result<Rendered, String> {
    try_render_chart(&chart_dir(), values)
}

fn try_render_chart(chart: &Path, values: &Value) -> Result<Rendered, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/helm_render.py");
    let mut child = Command::new(python())
        .arg(script)
        .arg(chart)
        .args(KUBERNETES)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting helm_render.py");
    serde_json::to_writer(child.stdin.take().unwrap(), values).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "helm_render.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();
    let lint = &out["lint"];
    assert_eq!(lint["errors"], json!([]), "helm lint: {lint}");
    let findings: Vec<&Value> = lint["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|message| message["severity"].as_u64() >= Some(2))
        .collect();
    assert!(findings.is_empty(), "helm lint --strict: {findings:?}");
    if let Some(error) = out["error"].as_str() {
        return Err(error.to_owned());
    }
    let manifests = out["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|manifest| {
            assert_eq!(
                manifest["invalid"],
                json!({}),
                "{} is not a valid {} for Kubernetes",
                manifest["template"],
                manifest["object"]["kind"]
            );
            manifest["object"].clone()
        })
        .collect();
    Ok(Rendered { manifests })
}

impl Rendered {
    fn kinds(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> = self
            .manifests
            .iter()
            .map(|object| object["kind"].as_str().unwrap())
            .collect();
        kinds.sort_unstable();
        kinds
    }

    fn get(&self, kind: &str) -> &Value {
        let found: Vec<&Value> = self
            .manifests
            .iter()
            .filter(|object| object["kind"] == kind)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one {kind} expected among {:?}",
            self.kinds()
        );
        found[0]
    }

    fn secret(&self, name: &str) -> &Value {
        self.manifests
            .iter()
            .find(|object| object["kind"] == "Secret" && object["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Secret {name} among {:?}", self.kinds()))
    }

    /// The container of the Deployment or the StatefulSet.
    fn container(&self, kind: &str) -> &Value {
        let containers = &self.get(kind)["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().unwrap().len(), 1);
        &containers[0]
    }
}

/// The container's environment variable `name`: its `value` or `valueFrom`.
fn env<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|var| var["name"] == name)
}

fn decoded(secret: &Value, key: &str) -> String {
    let encoded = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {secret}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

fn clustered(extra: Value) -> Value {
    let mut values = json!({
        "postgres": { "existingSecret": "packr-db" },
        "s3": { "bucket": "tarballs", "endpoint": "http://minio:9000", "pathStyle": true,
                "existingSecret": "packr-s3" },
        "replicaCount": 3,
    });
    merge(&mut values, extra);
    values
}

fn merge(into: &mut Value, extra: Value) {
    match (into, extra) {
        (Value::Object(into), Value::Object(extra)) => {
            for (key, value) in extra {
                merge(into.entry(key).or_insert(Value::Null), value);
            }
        }
        (into, extra) => *into = extra,
    }
}

fn assert_probes(container: &Value) {
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"],
        "/-/health/ready"
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"],
        "/-/health/live"
    );
}

#[test]
fn by_default_the_chart_runs_one_sqlite_instance_on_a_volume() {
    let chart = render(&json!({}));
    assert_eq!(chart.kinds(), ["Service", "StatefulSet"]);
    let set = chart.get("StatefulSet");
    assert_eq!(set["spec"]["replicas"], 1);
    assert_eq!(
        set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "data"
    );
    let container = chart.container("StatefulSet");
    assert_probes(container);
    assert_eq!(env(container, "PACKR_DATA_DIR").unwrap()["value"], "/data");
    // Packr keeps generating its secrets on the volume, as before the chart had a Secret.
    for absent in ["PACKR_SECRETS_DIR", "PACKR_DATABASE_URL", "PACKR_STORAGE"] {
        assert!(env(container, absent).is_none(), "{absent} in {container}");
    }
    // The Service reaches the pods.
    let service = chart.get("Service");
    let pod_labels = &set["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels[key], value);
    }
}

#[test]
fn postgres_and_s3_make_a_deployment_of_stateless_instances() {
    let chart = render(&clustered(json!({})));
    assert_eq!(
        chart.kinds(),
        ["Deployment", "PodDisruptionBudget", "Secret", "Service"]
    );
    let deployment = chart.get("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = chart.container("Deployment");
    assert_probes(container);

    // No volume but the secrets, mounted where PACKR_SECRETS_DIR points.
    assert_eq!(pod["volumes"].as_array().unwrap().len(), 1);
    let secrets = chart.secret("demo-packr-secrets");
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        "demo-packr-secrets"
    );
    let mounts = container["volumeMounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0]["name"], pod["volumes"][0]["name"]);
    assert_eq!(
        env(container, "PACKR_SECRETS_DIR").unwrap()["value"],
        mounts[0]["mountPath"]
    );
    // Generated secrets are hex of 32 bytes, one different value each.
    let mut values = Vec::new();
    for key in [
        "PACKR_JWT_SECRET",
        "PACKR_SESSION_SECRET",
        "PACKR_SECRET_KEY",
    ] {
        let value = decoded(secrets, key);
        assert!(
            value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key} = {value:?} is not 32 bytes of hex"
        );
        values.push(value);
    }
    values.dedup();
    assert_eq!(values.len(), 3);
    assert_eq!(
        secrets["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );

    // The database URL and the S3 keys come from the Secrets named in the values.
    assert_eq!(
        env(container, "PACKR_DATABASE_URL").unwrap()["valueFrom"]["secretKeyRef"],
        json!({ "name": "packr-db", "key": "PACKR_DATABASE_URL" })
    );
    assert_eq!(
        env(container, "PACKR_S3_SECRET_ACCESS_KEY").unwrap()["valueFrom"]["secretKeyRef"]["name"],
        "packr-s3"
    );
    for (name, value) in [
        ("PACKR_STORAGE", "s3"),
        ("PACKR_S3_BUCKET", "tarballs"),
        ("PACKR_S3_ENDPOINT", "http://minio:9000"),
        ("PACKR_S3_PATH_STYLE", "true"),
    ] {
        assert_eq!(env(container, name).unwrap()["value"], value, "{name}");
    }

    // Node drains take one instance at a time, and the budget covers these pods.
    let budget = chart.get("PodDisruptionBudget");
    assert_eq!(budget["spec"]["maxUnavailable"], 1);
    assert_eq!(
        budget["spec"]["selector"], deployment["spec"]["selector"],
        "the budget selects the Deployment's pods"
    );
}

#[test]
fn a_database_url_in_the_values_goes_to_a_secret_never_into_the_pod_spec() {
    let url = "postgres://packr:hunter2@db:5432/packr";
    let chart = render(&clustered(
        json!({ "postgres": { "existingSecret": "", "url": url } }),
    ));
    let database = chart.secret("demo-packr-database");
    assert_eq!(decoded(database, "PACKR_DATABASE_URL"), url);
    let deployment = chart.get("Deployment").to_string();
    assert!(!deployment.contains("hunter2"), "{deployment}");
    assert_eq!(
        env(chart.container("Deployment"), "PACKR_DATABASE_URL").unwrap()["valueFrom"]["secretKeyRef"]
            ["name"],
        "demo-packr-database"
    );
}

#[test]
fn secrets_can_be_given_or_come_from_an_existing_secret_and_must_be_hex() {
    let jwt = "ab".repeat(32);
    let chart = render(&clustered(json!({ "secrets": { "jwtSecret": jwt } })));
    let secrets = chart.secret("demo-packr-secrets");
    assert_eq!(decoded(secrets, "PACKR_JWT_SECRET"), jwt);
    assert_eq!(decoded(secrets, "PACKR_SECRET_KEY").len(), 64);

    let chart = render(&clustered(
        json!({ "secrets": { "existingSecret": "mine" } }),
    ));
    assert_eq!(
        chart.kinds(),
        ["Deployment", "PodDisruptionBudget", "Service"]
    );
    assert_eq!(
        chart.get("Deployment")["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
        "mine"
    );

    for bad in ["not hex at all", &"ab".repeat(31)] {
        let refused = try_render(&clustered(json!({ "secrets": { "sessionSecret": bad } })))
            .err()
            .unwrap_or_else(|| panic!("{bad:?} was accepted"));
        assert!(refused.contains("PACKR_SESSION_SECRET"), "{refused}");
    }

    // With SQLite, given secrets are mounted and the others left to Packr's volume.
    let chart = render(&json!({ "secrets": { "secretKey": jwt } }));
    let secrets = chart.secret("demo-packr-secrets");
    assert_eq!(secrets["data"].as_object().unwrap().len(), 1);
    assert!(env(chart.container("StatefulSet"), "PACKR_SECRETS_DIR").is_some());
}

#[test]
fn postgres_without_s3_is_refused() {
    let refused = try_render(&json!({ "postgres": { "existingSecret": "packr-db" } }))
        .err()
        .expect("postgres without s3 was accepted");
    assert!(refused.contains("s3.bucket"), "{refused}");
    // S3 alone keeps the single SQLite instance, with tarballs in the bucket.
    let chart = render(&json!({ "s3": { "bucket": "tarballs" } }));
    assert_eq!(chart.kinds(), ["Service", "StatefulSet"]);
    let container = chart.container("StatefulSet");
    assert_eq!(env(container, "PACKR_STORAGE").unwrap()["value"], "s3");
}

#[test]
fn the_ingress_and_the_disruption_budget_follow_their_values() {
    let chart = render(&clustered(json!({
        "ingress": { "enabled": true, "className": "nginx", "host": "npm.example.com",
                     "tls": { "secretName": "npm-tls" } },
        "podDisruptionBudget": { "minAvailable": 2 },
    })));
    let ingress = chart.get("Ingress");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(
        ingress["spec"]["tls"],
        json!([{ "hosts": ["npm.example.com"], "secretName": "npm-tls" }])
    );
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "npm.example.com");
    let backend = &rule["http"]["paths"][0]["backend"]["service"];
    let service = chart.get("Service");
    assert_eq!(backend["name"], service["metadata"]["name"]);
    assert_eq!(backend["port"]["name"], service["spec"]["ports"][0]["name"]);
    let budget = &chart.get("PodDisruptionBudget")["spec"];
    assert_eq!(budget["minAvailable"], 2);
    assert!(budget.get("maxUnavailable").is_none());

    // One replica gets no budget: it would block every node drain.
    let chart = render(&clustered(json!({ "replicaCount": 1 })));
    assert_eq!(chart.kinds(), ["Deployment", "Secret", "Service"]);
    assert!(
        try_render(&json!({ "ingress": { "enabled": true, "host": "" } }))
            .is_err_and(|refused| refused.contains("ingress.host"))
    );
}

/// What `helm upgrade` finds: the Secret of the release, as `lookup` returns it in a cluster.
/// Offline rendering has no cluster, so the test puts the Secret's data where the chart's
/// `lookup` call is, in a copy of the chart, and checks what the template does with it.
#[test]
fn an_upgrade_keeps_the_secrets_the_release_already_has() {
    let copy = tempfile::tempdir().unwrap();
    let chart = copy.path().join("packr");
    for dir in ["", "templates"] {
        std::fs::create_dir_all(chart.join(dir)).unwrap();
        for entry in std::fs::read_dir(chart_dir().join(dir)).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), chart.join(dir).join(entry.file_name())).unwrap();
            }
        }
    }
    let kept = "cd".repeat(32);
    let template = chart.join("templates/secret.yaml");
    let text = std::fs::read_to_string(&template).unwrap();
    let lookup = r#"(lookup "v1" "Secret" .Release.Namespace $name)"#;
    assert_eq!(text.matches(lookup).count(), 1, "the chart's lookup moved");
    let in_cluster = format!(
        r#"(dict "data" (dict "PACKR_SESSION_SECRET" "{}"))"#,
        base64::engine::general_purpose::STANDARD.encode(&kept)
    );
    std::fs::write(&template, text.replace(lookup, &in_cluster)).unwrap();

    let given = "ab".repeat(32);
    let values = clustered(json!({ "secrets": { "jwtSecret": given } }));
    let chart = try_render_chart(&chart, &values).unwrap_or_else(|err| panic!("{err}"));
    let secrets = chart.secret("demo-packr-secrets");
    assert_eq!(decoded(secrets, "PACKR_SESSION_SECRET"), kept, "kept");
    assert_eq!(
        decoded(secrets, "PACKR_JWT_SECRET"),
        given,
        "a given value wins"
    );
    let generated = decoded(secrets, "PACKR_SECRET_KEY");
    assert!(generated.len() == 64 && generated != kept && generated != given);
}
