//! Health and server reflection on the local listener, over the same TLS channel as the kring
//! services: what a load balancer's probe and grpcurl see.

mod common;

use std::collections::BTreeSet;

use common::{school, start_node};
use kring::tls::{Connect, channel, client_config, roots_from_pem};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn tls_channel(address: &str, ca_pem: &str) -> Channel {
    let roots = roots_from_pem(ca_pem.as_bytes()).expect("the CA certificate");
    let config = client_config(roots, None).expect("a client config");
    channel(address, "localhost", config, Connect::Eager)
        .await
        .expect("a TLS channel to the node")
}

#[tokio::test]
async fn health_reports_serving_for_the_server_and_each_service() {
    let test = start_node(&school()).await;
    let mut health = HealthClient::new(tls_channel(&test.address, &test.ca_pem).await);
    for service in ["", "kring.v1.Signals", "kring.v1.Audit"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("health of {service:?}: {e}"))
            .into_inner()
            .status;
        assert_eq!(
            status,
            ServingStatus::Serving as i32,
            "health of {service:?}"
        );
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "kring.v1.Nothing".into(),
        })
        .await
        .expect_err("an unknown service has no health");
    assert_eq!(unknown.code(), Code::NotFound);
}

/// grpcurl keeps the reflection stream open and sends its next request only after the answer
/// to the previous one; so does this test.
#[tokio::test]
async fn reflection_lists_the_services_on_an_open_stream() {
    let test = start_node(&school()).await;
    let mut reflection =
        ServerReflectionClient::new(tls_channel(&test.address, &test.ca_pem).await);
    let (requests, receiver) = tokio::sync::mpsc::channel(4);
    let ask = |message: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    };
    requests
        .send(ask(MessageRequest::ListServices(String::new())))
        .await
        .expect("the request stream is open");
    let mut responses = reflection
        .server_reflection_info(ReceiverStream::new(receiver))
        .await
        .expect("the reflection stream opens")
        .into_inner();

    let listed = responses
        .message()
        .await
        .expect("a reflection answer")
        .expect("an answer before the end of the stream");
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("expected a list of services, got {listed:?}");
    };
    let services: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "kring.v1.Signals",
        "kring.v1.Audit",
        "grpc.health.v1.Health",
    ] {
        assert!(services.contains(expected), "{expected} in {services:?}");
    }

    // The second question on the same stream: the descriptor of a kring service.
    requests
        .send(ask(MessageRequest::FileContainingSymbol(
            "kring.v1.Signals".into(),
        )))
        .await
        .expect("the request stream is still open");
    let described = responses
        .message()
        .await
        .expect("a reflection answer")
        .expect("an answer before the end of the stream");
    let Some(MessageResponse::FileDescriptorResponse(files)) = described.message_response else {
        panic!("expected file descriptors, got {described:?}");
    };
    let names: Vec<String> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| {
            <prost_types_free::FileName as prost::Message>::decode(bytes.as_slice())
                .expect("a file descriptor")
                .name
        })
        .collect();
    assert!(
        names.iter().any(|n| n == "kring/v1/signals.proto"),
        "{names:?}"
    );

    drop(requests);
    assert!(
        responses
            .message()
            .await
            .expect("the stream ends cleanly")
            .is_none()
    );
}

/// Just enough of `google.protobuf.FileDescriptorProto` to read a file's name, without a
/// dependency on prost-types.
mod prost_types_free {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileName {
        #[prost(string, tag = "1")]
        pub name: String,
    }
}
