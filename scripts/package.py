#!/usr/bin/env python3
"""Writes a release folder from what `sam build` made: deployable with `sam deploy` and no Rust.

  .venv/bin/python scripts/package.py [--build-dir .aws-sam/build] [--out dist]

Into dist/nango-sync-<version>/ (the version is Cargo.toml's):
  - one zip per function: the Rust functions' `bootstrap` (arm64, as SAM built it), the change
    feed example's consumer.py;
  - template.yaml: template.yaml with each function's CodeUri pointing at its zip and no build
    metadata, so `sam deploy --template-file template.yaml --guided` uploads the zips as they are;
    plus the Serverless Application Repository metadata (AWS::ServerlessRepo::Application);
  - README.md, LICENSE and CHANGELOG.md (the repository metadata names them);
  - SHA256SUMS of every file.
It also checks every resource type the template deploys (after SAM's transform) against the
Serverless Application Repository's list of supported resources and prints what is not on it.
scripts/package.sh runs sam build, this, `sam validate --lint` and the zips' checks.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# The Serverless Application Repository's supported resources, as its developer guide lists them
# (awsdocs/aws-serverlessrepo-developer-guide, doc_source/list-supported-resources.md), for the
# types a template like this one uses. A type missing here is printed; publishing may refuse it.
SAR_SUPPORTED = {
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::DynamoDB::Table",
    "AWS::Events::Rule",
    "AWS::IAM::Policy",
    "AWS::IAM::Role",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::Function",
    "AWS::Lambda::Permission",
    "AWS::Logs::LogGroup",
    "AWS::Logs::MetricFilter",
    "AWS::SNS::Topic",
    "AWS::SQS::Queue",
    "AWS::SQS::QueuePolicy",
    "AWS::Serverless::Function",
}


def cargo_field(name: str) -> str | None:
    """A string field of Cargo.toml's [package]."""
    text = (ROOT / "Cargo.toml").read_text(encoding="utf-8")
    package = text.split("[package]", 1)[1].split("\n[", 1)[0]
    match = re.search(rf'^{name}\s*=\s*"([^"]+)"', package, re.MULTILINE)
    return match.group(1) if match else None


def zip_one(path: Path, source: Path, name: str, mode: int) -> None:
    """A zip of one file, with fixed times so the same input gives the same bytes."""
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(info, source.read_bytes())


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        lid: res
        for lid, res in template["Resources"].items()
        if res.get("Type") == "AWS::Serverless::Function"
    }


def package_code(template: dict[str, Any], build_dir: Path, out: Path) -> None:
    """Each function's code as a zip in `out`, and its CodeUri pointed at it."""
    for lid, res in functions(template).items():
        metadata = res.pop("Metadata", {}) or {}
        props = res["Properties"]
        zipped = out / f"{lid}.zip"
        if metadata.get("BuildMethod") == "rust-cargolambda":
            bootstrap = build_dir / lid / "bootstrap"
            if not bootstrap.exists():
                sys.exit(f"package: {bootstrap} is missing: run sam build first")
            zip_one(zipped, bootstrap, "bootstrap", 0o755)
        else:
            # Deployed as it is (SkipBuild): the handler's file from its CodeUri folder.
            folder = ROOT / props["CodeUri"]
            handler_file = props["Handler"].split(".")[0] + ".py"
            zip_one(zipped, folder / handler_file, handler_file, 0o644)
        props["CodeUri"] = zipped.name
        print(f"   {lid}: {zipped.name} ({zipped.stat().st_size} bytes)")


def repository_metadata(template: dict[str, Any], semantic_version: str) -> None:
    metadata = {
        "Name": "nango-sync",
        "Description": "Keep a copy of Nango-synced records in your own AWS account: signed "
        "webhooks -> SQS FIFO -> DynamoDB, in Rust.",
        "Author": "nango-sync",
        "SpdxLicenseId": "Apache-2.0",
        "LicenseUrl": "LICENSE",
        "ReadmeUrl": "README.md",
        "Labels": ["nango", "sync", "webhooks", "dynamodb", "sqs", "rust"],
        "SemanticVersion": semantic_version,
    }
    # The source's address, when Cargo.toml names it (package.repository).
    repository = cargo_field("repository")
    if repository:
        metadata["HomePageUrl"] = repository
        metadata["SourceCodeUrl"] = repository
    template.setdefault("Metadata", {})["AWS::ServerlessRepo::Application"] = metadata


def deployed_types(template: dict[str, Any]) -> set[str]:
    """The resource types the template deploys, after SAM's transform (offline)."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    with_code = copy.deepcopy(template)
    for res in functions(with_code).values():
        res["Properties"]["CodeUri"] = "s3://bucket/key"
    session = boto3.session.Session(region_name="us-east-1")
    translated = Translator({}, Parser(), boto_session=session).translate(
        with_code, parameter_values={}, get_managed_policy_map=lambda: {}
    )
    return {res["Type"] for res in translated["Resources"].values()}


def sha256sums(out: Path) -> None:
    lines = []
    for path in sorted(out.iterdir()):
        if path.name != "SHA256SUMS":
            lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    (out / "SHA256SUMS").write_text("".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", default=str(ROOT / ".aws-sam" / "build"))
    parser.add_argument("--out", default=str(ROOT / "dist"))
    args = parser.parse_args()
    from samcli.yamlhelper import yaml_dump, yaml_parse

    semantic_version = cargo_field("version") or sys.exit("package: no version in Cargo.toml")
    out = Path(args.out) / f"nango-sync-{semantic_version}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    template = yaml_parse((ROOT / "template.yaml").read_text(encoding="utf-8"))
    print(f"== nango-sync {semantic_version} -> {out}")
    package_code(template, Path(args.build_dir), out)
    repository_metadata(template, semantic_version)
    (out / "template.yaml").write_text(yaml_dump(template), encoding="utf-8")
    for doc in ["README.md", "LICENSE", "CHANGELOG.md"]:
        shutil.copy(ROOT / doc, out / doc)
    sha256sums(out)

    outside = sorted(deployed_types(template) - SAR_SUPPORTED)
    print("== resource types deployed, against the Serverless Application Repository's list")
    for kind in outside:
        print(f"   not on its list: {kind}")
    print(f"   {len(outside)} type(s) not on the list" if outside else "   all on the list")


if __name__ == "__main__":
    main()
