//! Generates the gRPC code from `proto/` in pure Rust: protox parses the files (no system
//! protoc), and the descriptor set is kept for the reflection service.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/kring/v1/common.proto",
        "proto/kring/v1/signals.proto",
        "proto/kring/v1/audit.proto",
        "proto/kring/v1/peer.proto",
        "proto/kring/v1/cases.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("kring_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Requests that carry a BSN get a hand-written, redacting Debug in `api`.
        .skip_debug([
            ".kring.v1.RegisterRequest",
            ".kring.v1.RelatedPerson",
            ".kring.v1.ListRequest",
            ".kring.v1.AuditSearchRequest",
            ".kring.v1.LinkedSignalsRequest",
            ".kring.v1.BreakGlassRequest",
            ".kring.v1.CaseRequest",
            ".kring.v1.StartWaakvlamLocalRequest",
            ".kring.v1.ReportRequest",
        ])
        .compile_fds(descriptors)?;
    Ok(())
}
