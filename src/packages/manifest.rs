//! The fields of a version document npm acts on when it installs (dependencies, `bin`, install
//! scripts, platform checks), taken from the tarball's `package.json` rather than from the
//! publisher's JSON. The publish body is the client's word; the tarball is what npm unpacks, so
//! a packument built from the body could hide a `postinstall` or a dependency (manifest confusion).

use serde_json::{Map, Value};

use super::tarball::TarballManifest;

/// Fields copied from the tarball as they are, or removed when the tarball has none.
const COPIED_FIELDS: &[&str] = &[
    "dependencies",
    "devDependencies",
    "optionalDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "acceptDependencies",
    "directories",
    "os",
    "cpu",
    "libc",
    "engines",
    "gypfile",
];

/// The script npm adds for a package with a `binding.gyp` and no install script of its own.
const NODE_GYP_REBUILD: &str = "node-gyp rebuild";

/// The lifecycle scripts npm runs when it installs a package from the registry.
const INSTALL_SCRIPTS: &[&str] = &["preinstall", "install", "postinstall"];

/// Replaces every install-relevant field of `manifest` (the version object being stored) with
/// what the tarball's `package.json` says, normalized the way npm normalizes it before publishing,
/// so the JSON of an honest `npm publish` stays as it was.
pub fn apply_tarball_fields(manifest: &mut Map<String, Value>, contents: &TarballManifest) {
    let Value::Object(packed) = &contents.package_json else {
        return;
    };
    for field in COPIED_FIELDS {
        match packed.get(*field) {
            Some(value) if !value.is_null() => {
                manifest.insert((*field).to_owned(), value.clone());
            }
            _ => {
                manifest.remove(*field);
            }
        }
    }
    set_or_remove(manifest, "bundleDependencies", bundle_dependencies(packed));
    manifest.remove("bundledDependencies");
    let bin = bin(packed).or_else(|| bin_in_directory(packed, manifest.get("bin")));
    set_or_remove(manifest, "bin", bin.map(Value::Object));
    let (scripts, added_gyp) = scripts(packed, contents.has_binding_gyp);
    let has_install_script = INSTALL_SCRIPTS.iter().any(|s| scripts.contains_key(*s));
    if added_gyp {
        manifest.insert("gypfile".into(), Value::Bool(true));
    }
    set_or_remove(
        manifest,
        "scripts",
        (!scripts.is_empty()).then_some(Value::Object(scripts)),
    );
    set_or_remove(
        manifest,
        "hasInstallScript",
        has_install_script.then_some(Value::Bool(true)),
    );
}

fn set_or_remove(manifest: &mut Map<String, Value>, field: &str, value: Option<Value>) {
    match value {
        Some(value) => manifest.insert(field.to_owned(), value),
        None => manifest.remove(field),
    };
}

/// The string-valued scripts, plus `install: node-gyp rebuild` when npm would add it: a
/// `binding.gyp` at the root, no `install` or `preinstall`, and `gypfile` not `false`. Also
/// answers whether that script was added.
fn scripts(packed: &Map<String, Value>, has_binding_gyp: bool) -> (Map<String, Value>, bool) {
    let mut scripts: Map<String, Value> = match packed.get("scripts") {
        Some(Value::Object(scripts)) => scripts
            .iter()
            .filter(|(_, command)| command.is_string())
            .map(|(name, command)| (name.clone(), command.clone()))
            .collect(),
        _ => Map::new(),
    };
    let gyp_enabled = packed.get("gypfile") != Some(&Value::Bool(false));
    let add_gyp = has_binding_gyp
        && gyp_enabled
        && !scripts.contains_key("install")
        && !scripts.contains_key("preinstall");
    if add_gyp {
        scripts.insert("install".into(), NODE_GYP_REBUILD.into());
    }
    (scripts, add_gyp)
}

/// `bundleDependencies` (or its alias `bundledDependencies`) as npm publishes it: a list of names;
/// `true` bundles every dependency.
fn bundle_dependencies(packed: &Map<String, Value>) -> Option<Value> {
    let declared = packed
        .get("bundleDependencies")
        .or_else(|| packed.get("bundledDependencies"))?;
    let names: Vec<Value> = match declared {
        Value::Bool(true) => match packed.get("dependencies") {
            Some(Value::Object(dependencies)) => {
                dependencies.keys().cloned().map(Value::from).collect()
            }
            _ => Vec::new(),
        },
        Value::Array(names) => names.iter().filter(|n| n.is_string()).cloned().collect(),
        Value::Object(names) => names.keys().cloned().map(Value::from).collect(),
        _ => return None,
    };
    Some(Value::Array(names))
}

/// `bin` normalized like npm-normalize-package-bin: a string names the package's own command
/// (without its scope), an array names commands after their files, and every command name and
/// path is cleaned of `..` and separators. `None` when no command remains.
fn bin(packed: &Map<String, Value>) -> Option<Map<String, Value>> {
    let entries: Vec<(String, &str)> = match packed.get("bin")? {
        Value::String(path) => {
            let name = packed.get("name").and_then(Value::as_str)?;
            vec![(name.to_owned(), path.as_str())]
        }
        Value::Array(paths) => paths
            .iter()
            .filter_map(Value::as_str)
            .map(|path| (path.to_owned(), path))
            .collect(),
        Value::Object(commands) => commands
            .iter()
            .filter_map(|(name, path)| Some((name.clone(), path.as_str()?)))
            .collect(),
        _ => return None,
    };
    let clean: Map<String, Value> = entries
        .into_iter()
        .filter_map(|(name, path)| Some((command_name(&name)?, clean_path(path)?.into())))
        .collect();
    (!clean.is_empty()).then_some(clean)
}

/// With `directories.bin` and no `bin`, npm lists the files of that folder as commands when it
/// publishes. Packr does not keep the tarball's file list, so it keeps the publisher's commands
/// only where they point inside that folder: a command can be left out, never added elsewhere.
fn bin_in_directory(
    packed: &Map<String, Value>,
    sent: Option<&Value>,
) -> Option<Map<String, Value>> {
    if packed.contains_key("bin") {
        return None;
    }
    let folder = packed.get("directories")?.get("bin")?.as_str()?;
    let folder = format!("{}/", clean_path(folder)?);
    let Some(Value::Object(sent)) = sent else {
        return None;
    };
    let kept: Map<String, Value> = sent
        .iter()
        .filter_map(|(name, path)| Some((command_name(name)?, clean_path(path.as_str()?)?)))
        .filter(|(_, path)| path.starts_with(&folder))
        .map(|(name, path)| (name, path.into()))
        .collect();
    (!kept.is_empty()).then_some(kept)
}

/// The last component of a command name (`@scope/tool` → `tool`), with `\` and `:` as separators.
fn command_name(name: &str) -> Option<String> {
    let last = name
        .split(['/', '\\', ':'])
        .rfind(|part| !part.is_empty())?;
    (last != "." && last != "..").then(|| last.to_owned())
}

/// A path inside the package, as `path.join('/', p).slice(1)` makes it: `..` cannot climb out.
fn clean_path(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn contents(package_json: Value, has_binding_gyp: bool) -> TarballManifest {
        TarballManifest {
            package_json,
            root: "package".into(),
            file_count: 1,
            unpacked_size: 1,
            has_shrinkwrap: false,
            has_binding_gyp,
            readme: None,
        }
    }

    fn applied(sent: Value, packed: Value, has_binding_gyp: bool) -> Value {
        let Value::Object(mut manifest) = sent else {
            panic!("the sent manifest must be an object")
        };
        apply_tarball_fields(&mut manifest, &contents(packed, has_binding_gyp));
        Value::Object(manifest)
    }

    #[test]
    fn hidden_scripts_dependencies_and_bins_come_back_from_the_tarball() {
        let packed = json!({
            "name": "@acme/tool", "version": "1.0.0",
            "scripts": { "postinstall": "node steal.js", "test": "jest", "weird": 3 },
            "dependencies": { "evil": "^1.0.0" },
            "optionalDependencies": { "fsevents": "^2.0.0" },
            "peerDependencies": { "react": "*" },
            "peerDependenciesMeta": { "react": { "optional": true } },
            "bin": "./cli.js",
            "os": ["linux"], "cpu": ["x64"], "engines": { "node": ">=18" },
            "bundledDependencies": true,
        });
        let sent = json!({ "name": "@acme/tool", "version": "1.0.0", "main": "index.js",
                           "hasInstallScript": false, "os": ["darwin"] });
        let stored = applied(sent, packed, false);
        assert_eq!(
            stored["scripts"],
            json!({ "postinstall": "node steal.js", "test": "jest" })
        );
        assert_eq!(stored["hasInstallScript"], true);
        assert_eq!(stored["dependencies"], json!({ "evil": "^1.0.0" }));
        assert_eq!(stored["optionalDependencies"]["fsevents"], "^2.0.0");
        assert_eq!(stored["peerDependenciesMeta"]["react"]["optional"], true);
        assert_eq!(stored["bin"], json!({ "tool": "cli.js" }));
        assert_eq!(stored["os"], json!(["linux"]));
        assert_eq!(stored["cpu"], json!(["x64"]));
        assert_eq!(stored["engines"]["node"], ">=18");
        assert_eq!(stored["bundleDependencies"], json!(["evil"]));
        assert!(stored.get("bundledDependencies").is_none());
        assert_eq!(stored["main"], "index.js", "other fields stay as sent");
    }

    #[test]
    fn fields_the_tarball_lacks_are_removed_from_the_stored_document() {
        let sent = json!({ "name": "a", "version": "1.0.0", "dependencies": { "ghost": "1" },
                           "bin": { "ghost": "x.js" }, "scripts": { "install": "x" },
                           "hasInstallScript": true, "bundleDependencies": ["ghost"] });
        let stored = applied(sent, json!({ "name": "a", "version": "1.0.0" }), false);
        for field in [
            "dependencies",
            "bin",
            "scripts",
            "hasInstallScript",
            "bundleDependencies",
        ] {
            assert!(stored.get(field).is_none(), "{field} stayed: {stored}");
        }
    }

    #[test]
    fn a_binding_gyp_without_install_scripts_gets_node_gyp_rebuild_as_npm_adds_it() {
        let packed = json!({ "name": "native", "version": "1.0.0" });
        let stored = applied(json!({}), packed, true);
        assert_eq!(stored["scripts"]["install"], "node-gyp rebuild");
        assert_eq!(stored["hasInstallScript"], true);
        assert_eq!(stored["gypfile"], true);

        let opted_out = json!({ "name": "native", "version": "1.0.0", "gypfile": false });
        let stored = applied(json!({}), opted_out, true);
        assert!(stored.get("scripts").is_none() && stored.get("hasInstallScript").is_none());

        let own = json!({ "name": "n", "version": "1.0.0", "scripts": { "preinstall": "x" } });
        let stored = applied(json!({}), own, true);
        assert!(stored["scripts"].get("install").is_none());
        assert_eq!(stored["hasInstallScript"], true);
    }

    #[test]
    fn bins_are_normalized_like_npm_normalize_package_bin() {
        let packed = json!({ "name": "t", "version": "1.0.0", "bin": {
            "../../evil": "../../../etc/passwd", "ok": "./bin//ok.js", "bad": 1, "..": "x.js",
            "win\\name": "bin\\win.js", "empty": "./" } });
        let stored = applied(json!({}), packed, false);
        assert_eq!(
            stored["bin"],
            json!({ "evil": "etc/passwd", "ok": "bin/ok.js", "name": "bin/win.js" })
        );
        let listed = json!({ "name": "t", "version": "1.0.0", "bin": ["bin/a.js", "b"] });
        let stored = applied(json!({}), listed, false);
        assert_eq!(stored["bin"], json!({ "a.js": "bin/a.js", "b": "b" }));
    }

    #[test]
    fn with_directories_bin_only_commands_inside_that_folder_are_kept() {
        let packed = json!({ "name": "t", "version": "1.0.0", "directories": { "bin": "./bin" } });
        let sent = json!({ "bin": { "a": "bin/a.js", "b": "lib/b.js" } });
        let stored = applied(sent, packed, false);
        assert_eq!(stored["bin"], json!({ "a": "bin/a.js" }));
        assert_eq!(stored["directories"], json!({ "bin": "./bin" }));
    }

    #[test]
    fn an_honest_npm_manifest_is_unchanged() {
        let package_json = json!({
            "name": "honest", "version": "1.2.3", "main": "index.js",
            "bin": { "honest": "cli.js" }, "scripts": { "test": "node test.js" },
            "dependencies": { "left-pad": "^1.3.0" }, "engines": { "node": ">=18" },
        });
        let stored = applied(package_json.clone(), package_json.clone(), false);
        assert_eq!(stored, package_json);
    }
}
