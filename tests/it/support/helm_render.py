"""Lints and renders a Helm chart with Helm's own Go engine, then checks every manifest against
the Kubernetes API schemas; tests/it/helm_chart.rs reads the JSON this prints.

Helm's binary is not in the package registries this project installs from; its Go SDK is, inside
the PyPI wheel helm-python-sdk (libhelm_c: Helm v4's lint and offline render, as `helm lint` and
`helm template` run them). kubernetes-validate holds the OpenAPI schemas of each Kubernetes
release.

Usage: python helm_render.py CHART_DIR K8S_VERSION... < values.json
Prints {"lint": {...}, "manifests": [{"template", "object", "invalid": {version: message}}]}, or
{"error": message} when the chart refuses the values (a `fail` or a template error).
"""

import json
import sys

import helm_python as helm
import kubernetes_validate
import yaml


def main() -> None:
    chart_dir, versions = sys.argv[1], sys.argv[2:]
    values = json.load(sys.stdin)
    out = {"lint": helm.lint(chart_dir, values, strict=True, namespace="packr")}
    try:
        with helm.Chart.load(chart_dir) as chart:
            rendered = chart.render(values, name="demo", namespace="packr", is_install=True)
    except helm.HelmError as err:
        out["error"] = str(err)
        print(json.dumps(out))
        return
    manifests = []
    for template, text in sorted(rendered.items()):
        for document in yaml.safe_load_all(text):
            if document is None:
                continue
            invalid = {}
            for version in versions:
                try:
                    kubernetes_validate.validate(document, version, strict=True)
                except kubernetes_validate.ValidationError as err:
                    invalid[version] = f"{'.'.join(map(str, err.path))}: {err.message}"
                except Exception as err:  # noqa: BLE001 - an unknown kind or version, reported
                    invalid[version] = repr(err)
            manifests.append({"template": template, "object": document, "invalid": invalid})
    out["manifests"] = manifests
    print(json.dumps(out))


if __name__ == "__main__":
    main()
