//! Generates the Rust types of the `.proto` files under `proto/` with prost, parsing them
//! with protox (pure Rust), so a build needs no `protoc`.
//!
//! Every message also gets serde impls following the proto3 JSON mapping that Twirp's
//! `application/json` bodies use: bytes as base64, 64-bit integers as strings, `null` as
//! the default, unknown fields ignored, lowerCamelCase names (the original names are
//! accepted too). A field type the mapping below does not cover fails the build, so a new
//! `.proto` cannot silently get a wrong JSON form.

use std::path::{Path, PathBuf};

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::DescriptorProto;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let mut files = Vec::new();
    find_protos(Path::new("proto"), &mut files)?;
    files.sort();
    let fds = protox::compile(&files, ["proto"])?;
    let mut config = prost_build::Config::new();
    config.type_attribute(
        ".",
        "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
    );
    // One module tree for every package, so a new .proto needs no new include! line.
    config.include_file("protos.rs");
    for file in &fds.file {
        let package = file.package.clone().unwrap_or_default();
        for message in &file.message_type {
            json_attributes(&mut config, &format!(".{package}"), message)?;
        }
    }
    config.compile_fds(fds)?;
    Ok(())
}

fn find_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            find_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

fn json_attributes(
    config: &mut prost_build::Config,
    scope: &str,
    message: &DescriptorProto,
) -> Result<(), String> {
    let name = message.name();
    let path = format!("{scope}.{name}");
    for nested in &message.nested_type {
        json_attributes(config, &path, nested)?;
    }
    for field in &message.field {
        let fpath = format!("{path}.{}", field.name());
        let repeated = field.label() == Label::Repeated;
        let codec = match (field.r#type(), repeated) {
            (Type::Bytes, false) => "crate::spec::proto::json::bytes",
            (Type::Int64 | Type::Sint64 | Type::Sfixed64, false) => "crate::spec::proto::json::int64",
            (Type::Uint64 | Type::Fixed64, false) => "crate::spec::proto::json::uint64",
            (Type::String | Type::Bool | Type::Int32 | Type::Uint32 | Type::Sint32, false)
            | (Type::Message, _) => "crate::spec::proto::json::plain",
            (t, r) => {
                return Err(format!(
                    "{fpath}: no proto3 JSON mapping for {}{t:?} yet; add one to build.rs and src/proto.rs",
                    if r { "repeated " } else { "" }
                ))
            }
        };
        let mut attr = format!("#[serde(with = \"{codec}\")]");
        let json = field.json_name().to_string();
        if !json.is_empty() && json != field.name() {
            attr.push_str(&format!(
                " #[serde(rename = \"{json}\", alias = \"{}\")]",
                field.name()
            ));
        } else if !json.is_empty() && field.name().chars().any(|c| c.is_ascii_uppercase()) {
            // A camelCase .proto name (`remoteHash`) becomes a snake_case Rust field
            // (`remote_hash`); its JSON name is still the .proto's.
            attr.push_str(&format!(" #[serde(rename = \"{json}\")]"));
        }
        config.field_attribute(&fpath, attr);
    }
    Ok(())
}
