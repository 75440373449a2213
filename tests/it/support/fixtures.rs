//! Package folders to publish, made from the template in `fixtures/packages/greeting`.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The template package: `package.json`, `index.js` (exports `"<name>@<version>"`), `README.md`.
pub fn template_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/packages/greeting")
}

/// The template's `index.js`, as a client should install it.
pub fn template_index_js() -> String {
    fs::read_to_string(template_dir().join("index.js")).expect("reading the fixture index.js")
}

/// Asserts that `project/node_modules/<name>` (a folder, or pnpm's symlink) holds the fixture
/// `name` at `version`.
pub fn assert_installed(project: &Path, name: &str, version: &str) {
    let dir = project.join("node_modules").join(name);
    let index = fs::read_to_string(dir.join("index.js"))
        .unwrap_or_else(|err| panic!("{name} is not installed in {}: {err}", project.display()));
    assert_eq!(index, template_index_js(), "index.js of {name}");
    let manifest: Value = serde_json::from_str(
        &fs::read_to_string(dir.join("package.json")).expect("installed package.json"),
    )
    .expect("installed package.json is JSON");
    assert_eq!(manifest["name"], name, "installed package.json of {name}");
    assert_eq!(manifest["version"], version, "installed version of {name}");
}

/// A package folder to be written: the template renamed, with optional dependencies.
pub struct Package {
    name: String,
    version: String,
    dependencies: Vec<(String, String)>,
    files: Vec<(String, String)>,
}

impl Package {
    /// The template as `name@version`.
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            dependencies: Vec::new(),
            files: Vec::new(),
        }
    }

    /// Adds a runtime dependency on `name` with the semver `range`.
    pub fn dependency(mut self, name: &str, range: &str) -> Self {
        self.dependencies.push((name.to_owned(), range.to_owned()));
        self
    }

    /// Adds (or replaces) a file, so two folders of one version can differ.
    pub fn file(mut self, path: &str, contents: &str) -> Self {
        self.files.push((path.to_owned(), contents.to_owned()));
        self
    }

    /// Writes the folder under `parent` (as `<name>-<version>`, `@` and `/` replaced, with a
    /// numeric suffix if taken) and returns it.
    pub fn write_into(&self, parent: &Path) -> PathBuf {
        let folder = format!("{}-{}", self.name, self.version)
            .replace('@', "")
            .replace('/', "-");
        let mut dir = parent.join(&folder);
        let mut copy = 1;
        while dir.exists() {
            copy += 1;
            dir = parent.join(format!("{folder}-{copy}"));
        }
        fs::create_dir_all(&dir).expect("creating the package folder");
        let template = template_dir();
        for file in ["index.js", "README.md"] {
            fs::copy(template.join(file), dir.join(file)).expect("copying a fixture file");
        }
        let manifest = fs::read_to_string(template.join("package.json"))
            .expect("reading the fixture manifest");
        let mut manifest: Value =
            serde_json::from_str(&manifest).expect("fixture manifest is JSON");
        manifest["name"] = Value::from(self.name.as_str());
        manifest["version"] = Value::from(self.version.as_str());
        if !self.dependencies.is_empty() {
            manifest["dependencies"] = self
                .dependencies
                .iter()
                .map(|(name, range)| (name.clone(), Value::from(range.as_str())))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        fs::write(dir.join("package.json"), format!("{manifest:#}\n"))
            .expect("writing the package manifest");
        for (path, contents) in &self.files {
            fs::write(dir.join(path), contents).expect("writing a package file");
        }
        dir
    }
}
