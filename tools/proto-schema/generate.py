#!/usr/bin/env python3
"""Writes the Kubernetes protobuf schema table KubeModel transcodes with.

Reads the published `generated.proto` files (proto2, Kubernetes' go-to-protobuf output) under
the directory given as the first argument (default ../shared/testdata/kubernetes-proto) and
writes Sources/KubeModel/Protobuf/KubeProtoSchemaTable.swift: one line per message with its
fields' numbers, names, types and whether the field is marked `+optional` (omitted from JSON
when empty), and the message's `+protobuf` markers. Only facts of the wire format are kept: no
comment text. Run with `make proto-schema` after the schemas change.
"""
import os
import re
import sys

SCALARS = {"string": "s", "bool": "b", "int32": "i32", "int64": "i64", "bytes": "y", "double": "d",
           "float": "f", "uint32": "u32", "uint64": "u64"}
FIELD = re.compile(r"^\s*(optional|repeated|required)\s+(\S+)\s+(\w+)\s*=\s*(\d+)\s*;")
MAP = re.compile(r"^\s*map<\s*(\S+)\s*,\s*(\S+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;")
MESSAGE = re.compile(r"^\s*message\s+(\w+)\s*\{")
PACKAGE = re.compile(r"^\s*package\s+([\w.]+)\s*;")
# Embedded Go structs whose JSON is inlined into the outer object (`json:",inline"` in the Go
# types; the schema alone does not say so): (message, field).
INLINE = {
    ("k8s.io.api.core.v1.Volume", "volumeSource"),
    ("k8s.io.api.core.v1.PersistentVolumeSpec", "persistentVolumeSource"),
    ("k8s.io.api.core.v1.Probe", "handler"),
    ("k8s.io.api.core.v1.EphemeralContainer", "ephemeralContainerCommon"),
    ("k8s.io.api.core.v1.ConfigMapEnvSource", "localObjectReference"),
    ("k8s.io.api.core.v1.ConfigMapKeySelector", "localObjectReference"),
    ("k8s.io.api.core.v1.ConfigMapProjection", "localObjectReference"),
    ("k8s.io.api.core.v1.ConfigMapVolumeSource", "localObjectReference"),
    ("k8s.io.api.core.v1.SecretEnvSource", "localObjectReference"),
    ("k8s.io.api.core.v1.SecretKeySelector", "localObjectReference"),
    ("k8s.io.api.core.v1.SecretProjection", "localObjectReference"),
}
# JSON names that differ from the protobuf field names (the Go types' json tags).
JSON_SCHEMA_PROPS = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps"
RENAMED = {(JSON_SCHEMA_PROPS, "ref"): "$ref", (JSON_SCHEMA_PROPS, "schema"): "$schema"}
# Messages whose Go fields are all `omitempty` though the schema marks none `+optional`.
ALL_OPTIONAL = {JSON_SCHEMA_PROPS}


def json_name(message, name):
    if (message, name) in RENAMED:
        return RENAMED[(message, name)]
    if name.startswith("xKubernetes"):
        return "x-kubernetes" + re.sub(r"([A-Z])", lambda m: "-" + m.group(1).lower(), name[len("xKubernetes"):])
    return name


MARKERS = {"+protobuf.nullable=true": "nullable", "+protobuf.as=Timestamp": "timestamp",
           "+protobuf.embed=string": "embedString", "+protobuf.options.marshal=false": "customMarshal"}


def qualify(type_name, package):
    if type_name in SCALARS:
        return SCALARS[type_name]
    if type_name.startswith("."):
        return "M" + type_name[1:]
    return "M" + package + "." + type_name


def parse(path):
    package, messages, current, comments = None, [], None, []
    with open(path, encoding="utf-8") as source:
        for line in source:
            stripped = line.strip()
            if stripped.startswith("//"):
                comments.append(stripped[2:].strip())
                continue
            if match := PACKAGE.match(line):
                package = match.group(1)
            elif match := MESSAGE.match(line):
                markers = sorted({MARKERS[c] for c in comments if c in MARKERS})
                current = {"name": package + "." + match.group(1), "markers": markers, "fields": []}
                messages.append(current)
            elif match := FIELD.match(line):
                label, type_name, name, number = match.groups()
                optional = "+optional" in comments or current["name"] in ALL_OPTIONAL
                flags = ("r" if label == "repeated" else "") + ("o" if optional else "") + \
                    ("i" if (current["name"], name) in INLINE else "")
                name = json_name(current["name"], name)
                current["fields"].append(f"{number}:{name}:{qualify(type_name, package)}" + (f":{flags}" if flags else ""))
            elif match := MAP.match(line):
                key, value, name, number = match.groups()
                flags = "o" if "+optional" in comments or current["name"] in ALL_OPTIONAL else ""
                name = json_name(current["name"], name)
                current["fields"].append(f"{number}:{name}:{{{qualify(key, package)},{qualify(value, package)}}}" + (f":{flags}" if flags else ""))
            elif stripped and not stripped.startswith(("syntax", "option", "import", "}", "/*", "*", "Copyright", "Licensed",
                                                         "you may", "You may", "http", "Unless", "distributed", "WITHOUT",
                                                         "See the", "limitations")):
                raise SystemExit(f"{path}: a line this generator does not know: {stripped}")
            comments = []
    return messages


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../../shared/testdata/kubernetes-proto")
    output = os.path.join(os.path.dirname(__file__), "../../Sources/KubeModel/Protobuf/KubeProtoSchemaTable.swift")
    lines = []
    for directory, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith(".proto"):
                for message in parse(os.path.join(directory, name)):
                    head = message["name"] + "".join(" @" + m for m in message["markers"])
                    lines.append(" ".join([head] + message["fields"]))
    lines.sort()
    inlined = sum(1 for line in lines for word in line.split()[1:] if word.count(":") == 3 and "i" in word.split(":")[3])
    if inlined != len(INLINE):
        raise SystemExit(f"{inlined} inlined fields found of {len(INLINE)} listed: the schemas changed")
    with open(output, "w", encoding="utf-8") as swift:
        swift.write("// Generated by tools/proto-schema/generate.py from Kubernetes' published generated.proto\n")
        swift.write("// schemas (proto2): message names, field numbers, names and types, and markers. Do not edit.\n\n")
        swift.write("extension KubeProtoSchema {\n")
        swift.write("    /// One message per line: `name [@marker…] number:name:type[:flags]…`.\n")
        swift.write('    static let table = """\n')
        for line in lines:
            swift.write("        " + line + "\n")
        swift.write('        """\n}\n')
    print(f"{len(lines)} messages written to {os.path.normpath(output)}")


if __name__ == "__main__":
    main()
