#!/usr/bin/env python3
"""Generate src/model/spec.rs from the App Mesh API model shipped in botocore.

The App Mesh service model (`botocore/data/appmesh/2019-01-25/service-2.json.gz`) is the
authoritative description of every spec shape: members, required members, unions, enums,
lengths, ranges, list sizes and patterns.  This script turns the shapes reachable from the
seven resource specs (and `TagRef`) into serde types plus a `Validate` implementation that
enforces every constraint of the model, so that the Rust code cannot drift from the API.

Usage: pip install botocore && python3 tools/gen_model.py > src/model/spec.rs && cargo fmt
"""
import gzip
import html
import json
import os
import re
import sys

import botocore

MODEL = os.path.join(os.path.dirname(botocore.__file__), "data/appmesh/2019-01-25/service-2.json.gz")
ROOTS = ["MeshSpec", "VirtualNodeSpec", "VirtualRouterSpec", "RouteSpec", "VirtualServiceSpec",
         "VirtualGatewaySpec", "GatewayRouteSpec", "TagRef"]
# Bounds the API model leaves out, so that nothing accepted compiles into what Envoy
# rejects (each listed in the README's compatibility notes). Counts that Envoy reads
# as `UInt32Value`s are at most 2^32 - 1.
NUMBER_MAX = {name: 4294967295 for name in [
    "MaxConnections", "MaxPendingRequests", "MaxRequests", "MaxRetries",
    "OutlierDetectionMaxServerErrors"]}
# Strings the model leaves unbounded, bounded by what they mean: (min, max) characters.
STRING_BOUNDS = {
    "ServiceName": (1, 255),  # a virtual service's or a gRPC service's name, like resource names
    "QueryParameterName": (1, 255),
    "String": (0, 4096),  # URL paths and prefixes, query parameter values
    "SdsSecretName": (1, 2048),  # SPIFFE IDs are at most 2,048 bytes
    "VirtualGatewaySdsSecretName": (1, 2048),
    "Arn": (1, 2048),  # AWS ARNs are at most 2,048 characters
}
# Strings checked by a function of `model/validate.rs` instead of a length.
STRING_CHECKS = {
    "Hostname": "check_hostname",  # a DNS name or an IP address
}
# Checks of a whole structure, after its members' (functions of `model/validate.rs`).
STRUCT_CHECKS = {
    # Envoy accepts durations of at most 9,223,372,035 s.
    "Duration": "check_duration(self, at)?;",
}
# Gateway shapes that the API model defines as copies of node shapes: each gets a
# generated `From` conversion into its node twin (member by member, checked here to have
# the same members, kinds and enum values), so the compiler shares one TLS code path.
TWINS = [("VirtualGatewayListenerTls", "ListenerTls"), ("VirtualGatewayClientPolicy", "ClientPolicy")]
KEYWORDS = {"type", "match", "ref", "move", "box", "in", "loop", "struct", "enum", "fn", "mod", "use", "self", "override"}


def snake(name):
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
    return "r#" + s if s in KEYWORDS else s


def variant(value):
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", value) if p]
    return "".join(p[:1].upper() + p[1:].lower() for p in parts)


def doc(text, indent=""):
    if not text:
        return ""
    plain = re.sub(r"<[^>]+>", " ", text)
    plain = html.unescape(re.sub(r"\s+", " ", plain)).strip()
    first = re.split(r"(?<=\.)\s", plain)[0] if plain else ""
    return f"{indent}/// {first}\n" if first else ""


def rust_lit(s):
    return json.dumps(s)


def main():
    model = json.load(gzip.open(MODEL))
    shapes = model["shapes"]
    order = []

    def walk(name):
        if name in order:
            return
        order.append(name)
        shape = shapes[name]
        if shape["type"] == "structure":
            for member in shape["members"].values():
                walk(member["shape"])
        elif shape["type"] == "list":
            walk(shape["member"]["shape"])

    for root in ROOTS:
        walk(root)

    def is_enum(name):
        return shapes[name]["type"] == "string" and "enum" in shapes[name]

    def rust_type(name):
        shape = shapes[name]
        t = shape["type"]
        if t == "structure" or is_enum(name):
            return name
        if t == "string":
            return "String"
        if t in ("integer", "long"):
            return "i64"
        if t == "boolean":
            return "bool"
        if t == "list":
            return f"Vec<{rust_type(shape['member']['shape'])}>"
        raise SystemExit(f"unsupported shape {name}: {t}")

    def checks(name, expr, path_expr, depth=0, is_ref=True):
        """Rust statements validating `expr` of shape `name`: a reference when `is_ref`,
        otherwise a place (`self.field`)."""
        shape = shapes[name]
        t = shape["type"]
        by_ref = expr if is_ref else f"&{expr}"
        by_value = f"*{expr}" if is_ref else expr
        out = []
        if t == "string" and name in STRING_CHECKS:
            out.append(f"{STRING_CHECKS[name]}({by_ref}, &{path_expr})?;")
        elif t == "string" and not is_enum(name):
            lo, hi = STRING_BOUNDS.get(name, (shape.get("min"), shape.get("max")))
            if lo is not None or hi is not None:
                out.append(f"check_length({by_ref}, {lo if lo is not None else 0}, {hi if hi is not None else 'usize::MAX'}, &{path_expr})?;")
            if "pattern" in shape:
                out.append(f"check_pattern({by_ref}, {rust_lit(shape['pattern'])}, &{path_expr})?;")
        elif t in ("integer", "long"):
            lo, hi = shape.get("min"), shape.get("max", NUMBER_MAX.get(name))
            if lo is not None or hi is not None:
                out.append(f"check_range({by_value}, {lo if lo is not None else 'i64::MIN'}, {hi if hi is not None else 'i64::MAX'}, &{path_expr})?;")
        elif t == "structure":
            out.append(f"{expr}.validate(&{path_expr})?;")
        elif t == "list":
            lo, hi = shape.get("min"), shape.get("max")
            if lo is not None or hi is not None:
                out.append(f"check_count({expr}.len(), {lo if lo is not None else 0}, {hi if hi is not None else 'usize::MAX'}, &{path_expr})?;")
            inner = checks(shape["member"]["shape"], f"item{depth}", f"format!(\"{{}}[{{}}]\", {path_expr}, i{depth})", depth + 1)
            if inner:
                body = "\n".join("    " + line for line in inner)
                out.append(f"for (i{depth}, item{depth}) in {expr}.iter().enumerate() {{\n{body}\n}}")
        return out

    w = sys.stdout.write
    w("// @generated by tools/gen_model.py from botocore's App Mesh model (API 2019-01-25).\n")
    w("// Do not edit by hand: change the generator, run it again, then `cargo fmt`.\n\n")
    w("//! The App Mesh spec shapes, exactly as the API model defines them.\n")
    w("//!\n//! Every struct rejects unknown fields; optional members are `Option`s that are left out\n")
    w("//! of the JSON when unset, so a spec read back serialises as it was written. Unions are\n")
    w("//! structs whose `validate` insists on exactly one member.\n\n")
    w("#![allow(clippy::all)]\n\n")
    w("use serde::{Deserialize, Serialize};\n\n")
    w("use super::validate::{check_count, check_duration, check_hostname, check_length, check_pattern, check_range, union_member_count, FieldError, Validate};\n\n")

    for name in order:
        shape = shapes[name]
        if is_enum(name):
            w(doc(shape.get("documentation")) or f"/// The `{name}` enumeration.\n")
            w("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]\n")
            w(f"pub enum {name} {{\n")
            for value in shape["enum"]:
                w(f"    #[serde(rename = {rust_lit(value)})]\n    {variant(value)},\n")
            w("}\n\n")
            w(f"impl {name} {{\n    /// The value as it appears on the wire.\n    pub fn as_str(self) -> &'static str {{\n        match self {{\n")
            for value in shape["enum"]:
                w(f"            Self::{variant(value)} => {rust_lit(value)},\n")
            w("        }\n    }\n}\n\n")
            continue
        if shape["type"] != "structure":
            continue
        required = set(shape.get("required", []))
        union = shape.get("union", False)
        w(doc(shape.get("documentation")) or f"/// The `{name}` shape.\n")
        derive_default = union or not (required & set(shape["members"]))
        w("#[derive(Debug, Clone, PartialEq, Eq, Hash, " + ("Default, " if derive_default else "") + "Serialize, Deserialize)]\n")
        w("#[serde(deny_unknown_fields)]\n")
        w(f"pub struct {name} {{\n")
        for member, spec in shape["members"].items():
            w(doc(spec.get("documentation"), "    "))
            ty = rust_type(spec["shape"])
            if member in required and not union:
                w(f"    #[serde(rename = {rust_lit(member)})]\n    pub {snake(member)}: {ty},\n")
            else:
                w(f"    #[serde(rename = {rust_lit(member)}, default, skip_serializing_if = \"Option::is_none\")]\n")
                w(f"    pub {snake(member)}: Option<{ty}>,\n")
        w("}\n\n")
        w(f"impl Validate for {name} {{\n    fn validate(&self, at: &str) -> Result<(), FieldError> {{\n")
        if union:
            members = list(shape["members"])
            flags = ", ".join(f"self.{snake(m)}.is_some()" for m in members)
            w(f"        union_member_count(&[{flags}], &[{', '.join(rust_lit(m) for m in members)}], at)?;\n")
        for member, spec in shape["members"].items():
            field = snake(member)
            path = f"format!(\"{{at}}.{member}\")"
            if member in required and not union:
                lines = checks(spec["shape"], f"self.{field}", "path", is_ref=False)
                if lines:
                    w("        {\n            let path = " + path + ";\n")
                    for line in lines:
                        w("\n".join("            " + l for l in line.split("\n")) + "\n")
                    w("        }\n")
            else:
                lines = checks(spec["shape"], "value", "path")
                if lines:
                    w(f"        if let Some(value) = &self.{field} {{\n            let path = {path};\n")
                    for line in lines:
                        w("\n".join("            " + l for l in line.split("\n")) + "\n")
                    w("        }\n")
        if name in STRUCT_CHECKS:
            w(f"        {STRUCT_CHECKS[name]}\n")
        w("        let _ = at;\n        Ok(())\n    }\n}\n\n")

    twin_conversions(shapes, w)


def twin_conversions(shapes, w):
    """Writes `impl From<&A> for B` for every structure pair reachable from TWINS, and
    `impl From<A> for B` for every enum pair; fails if a pair differs in shape."""
    done = set()

    def primitive(name):
        t = shapes[name]["type"]
        if t == "list":
            return primitive(shapes[name]["member"]["shape"])
        return t in ("string", "integer", "long", "boolean") and "enum" not in shapes[name]

    def pair(a, b):
        if (a, b) in done or a == b:
            return
        done.add((a, b))
        A, B = shapes[a], shapes[b]
        if A["type"] != B["type"]:
            raise SystemExit(f"twins {a} and {b} differ in type")
        if "enum" in A:
            if A["enum"] != B.get("enum"):
                raise SystemExit(f"twins {a} and {b} differ in values")
            w(f"impl From<{a}> for {b} {{\n    fn from(value: {a}) -> Self {{\n        match value {{\n")
            for value in A["enum"]:
                w(f"            {a}::{variant(value)} => {b}::{variant(value)},\n")
            w("        }\n    }\n}\n\n")
            return
        if A["type"] != "structure":
            return
        ma, mb = A["members"], B["members"]
        union = A.get("union", False)
        required = set(A.get("required", [])) if not union else set()
        if set(ma) != set(mb) or required != (set(B.get("required", [])) if not B.get("union") else set()):
            raise SystemExit(f"twins {a} and {b} differ in members")
        fields = []
        for member, spec in ma.items():
            sa, sb = spec["shape"], mb[member]["shape"]
            field = snake(member)
            opt = member not in required
            if sa == sb or (primitive(sa) and primitive(sb)):
                expr = f"value.{field}.clone()"
            elif shapes[sa]["type"] == "structure":
                pair(sa, sb)
                expr = f"value.{field}.as_ref().map(Into::into)" if opt else f"(&value.{field}).into()"
            elif "enum" in shapes[sa]:
                pair(sa, sb)
                expr = f"value.{field}.map(Into::into)" if opt else f"value.{field}.into()"
            elif shapes[sa]["type"] == "list":
                pair(shapes[sa]["member"]["shape"], shapes[sb]["member"]["shape"])
                items = "iter().map(Into::into).collect()"
                expr = f"value.{field}.as_ref().map(|items| items.{items})" if opt else f"value.{field}.{items}"
            else:
                raise SystemExit(f"twins {a}.{member} and {b}.{member}: unsupported")
            fields.append(f"            {field}: {expr},\n")
        w(f"impl From<&{a}> for {b} {{\n    fn from(value: &{a}) -> Self {{\n        {b} {{\n")
        for f in fields:
            w(f)
        w("        }\n    }\n}\n\n")

    for a, b in TWINS:
        pair(a, b)


if __name__ == "__main__":
    main()
