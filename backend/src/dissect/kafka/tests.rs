//! Kafka conversations driven through the connection dissector: byte literals laid out as the
//! protocol guide gives them ("Requests and Responses", "The Messages"), and frames encoded by
//! `kafka-protocol` for the larger messages (Produce, Fetch, Metadata at flexible versions).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName, fetch_request, fetch_response, metadata_response, produce_request, produce_response,
};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use podtap_shared::{Detail, KafkaExchange};

use crate::dissect::{Dissected, Exchange};
use crate::reassemble::Dir;

const C: Dir = Dir::AtoB;
const S: Dir = Dir::BtoA;

fn run_on(port: u16, syn: bool, steps: &[(Dir, Vec<u8>)]) -> Vec<Exchange> {
    crate::dissect::conversation::converse(port, syn, steps)
        .into_iter()
        .filter_map(|d| match d {
            Dissected::Exchange(e) if matches!(e.detail, Detail::Kafka(_)) => Some(*e),
            _ => None,
        })
        .collect()
}

fn run(steps: &[(Dir, Vec<u8>)]) -> Vec<Exchange> {
    // Not Kafka's port: recognised by content.
    run_on(19092, true, steps)
}

fn kafka(e: &Exchange) -> &KafkaExchange {
    match &e.detail {
        Detail::Kafka(k) => k,
        other => panic!("not Kafka: {other:?}"),
    }
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// A request frame: header (its version from the API and version) and body, both encoded.
fn request<T: Encodable + HeaderVersion>(key: ApiKey, version: i16, correlation: i32, body: &T) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("orders-app")))
        .encode(&mut buf, T::header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    framed(&buf)
}

fn response<T: Encodable>(key: ApiKey, version: i16, correlation: i32, body: &T) -> Vec<u8> {
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation)
        .encode(&mut buf, key.response_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    framed(&buf)
}

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// ApiVersions v3, as `kafka-broker-api-versions.sh` sends it (KAFKA-14935's dump): header v2
/// (flexible) with client id `admin-1`, then the client software's name and version.
const API_VERSIONS_V3: &[u8] = b"\x00\x00\x00\x2b\x00\x12\x00\x03\x00\x00\x00\x00\x00\x07admin-1\x00\
\x12apache-kafka-java\x063.3.1\x00";

#[test]
fn api_versions_is_paired_by_correlation_id() {
    // Response header v0 (ApiVersions is never flexible there): correlation id 0; error code 0,
    // an empty compact array of keys, throttle time 0, no tagged fields.
    let answer = framed(b"\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00");
    let ex = run(&[(C, API_VERSIONS_V3.to_vec()), (S, answer)]);
    assert_eq!(ex.len(), 1, "{ex:?}");
    let k = kafka(&ex[0]);
    assert_eq!((k.operation.as_str(), k.api_key, k.version, k.correlation_id), ("ApiVersions", 18, 3, 0));
    assert_eq!(k.client_id.as_deref(), Some("admin-1"));
    assert_eq!((k.error.as_deref(), k.unread.as_deref()), (None, None), "{k:?}");
    assert!(ex[0].response_ts_us.is_some());
    assert_eq!(ex[0].request_size, 47);
    assert_eq!(ex[0].detail.outcome().as_deref(), Some("OK"));
}

fn produce(acks: i16) -> ProduceRequest {
    let data = |i: i32| {
        produce_request::PartitionProduceData::default()
            .with_index(i)
            .with_records(Some(Bytes::from_static(b"SECRET-PAYLOAD-never-shown")))
    };
    ProduceRequest::default().with_acks(acks).with_timeout_ms(30_000).with_topic_data(vec![
        produce_request::TopicProduceData::default()
            .with_name(topic("orders"))
            .with_partition_data(vec![data(0), data(1)]),
    ])
}

#[test]
fn produce_names_topic_and_partitions_and_the_first_error() {
    let partition =
        |i: i32, code: i16| produce_response::PartitionProduceResponse::default().with_index(i).with_error_code(code);
    let answer = ProduceResponse::default().with_responses(vec![
        produce_response::TopicProduceResponse::default()
            .with_name(topic("orders"))
            .with_partition_responses(vec![partition(0, 0), partition(1, 6)]),
    ]);
    let ex = run(&[(C, request(ApiKey::Produce, 9, 7, &produce(1))), (S, response(ApiKey::Produce, 9, 7, &answer))]);
    let k = kafka(&ex[0]);
    assert_eq!(ex[0].detail.request_line(), "Produce orders[0,1] acks=1");
    assert_eq!((k.topic.as_deref(), k.partition), (Some("orders"), Some(0)), "DESIGN's fields");
    assert_eq!((k.error.as_deref(), k.error_code, k.failed_partitions), (Some("NotLeaderOrFollower"), Some(6), 1));
    assert_eq!(k.records_bytes, Some(2 * 26));
    assert_eq!(k.client_id.as_deref(), Some("orders-app"));
    let json = serde_json::to_string(&ex[0].detail).unwrap();
    assert!(!json.contains("SECRET"), "a record's payload left the node: {json}");
}

#[test]
fn a_produce_with_acks_0_is_a_record_at_once_and_no_error() {
    // Then a second request on the same connection, answered: pairing is not thrown off.
    let md = MetadataResponse::default();
    let steps = [
        (C, request(ApiKey::Produce, 9, 1, &produce(0))),
        (C, request(ApiKey::Metadata, 12, 2, &kafka_protocol::messages::MetadataRequest::default())),
        (S, response(ApiKey::Metadata, 12, 2, &md)),
    ];
    let ex = run(&steps);
    assert_eq!(ex.len(), 2, "{ex:?}");
    let k = kafka(&ex[0]);
    assert!(k.no_response && k.acks == Some(0), "{k:?}");
    assert_eq!(ex[0].detail.outcome().as_deref(), Some("no response (acks=0)"));
    assert_eq!(kafka(&ex[1]).operation, "Metadata");
    assert!(ex[1].response_ts_us.is_some());
}

#[test]
fn fetch_by_topic_id_is_named_from_the_metadata_response() {
    let id = uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
    let md = MetadataResponse::default().with_topics(vec![
        metadata_response::MetadataResponseTopic::default().with_name(Some(topic("orders"))).with_topic_id(id),
    ]);
    let fetch = FetchRequest::default().with_max_wait_ms(500).with_topics(vec![
        fetch_request::FetchTopic::default()
            .with_topic_id(id)
            .with_partitions(vec![fetch_request::FetchPartition::default().with_partition(2)]),
    ]);
    let records = fetch_response::PartitionData::default()
        .with_partition_index(2)
        .with_records(Some(Bytes::from_static(b"0123456789")));
    let answer = FetchResponse::default().with_responses(vec![
        fetch_response::FetchableTopicResponse::default().with_topic_id(id).with_partitions(vec![records]),
    ]);
    let ex = run(&[
        (C, request(ApiKey::Metadata, 12, 1, &kafka_protocol::messages::MetadataRequest::default())),
        (S, response(ApiKey::Metadata, 12, 1, &md)),
        (C, request(ApiKey::Fetch, 13, 2, &fetch)),
        (S, response(ApiKey::Fetch, 13, 2, &answer)),
    ]);
    assert_eq!(ex.len(), 2);
    // The dissector writes the id as Kafka does, and the Metadata exchange says what it names;
    // the joiner's table (in capture order, whichever connection) puts the name in.
    assert_eq!(ex[1].detail.request_line(), "Fetch id:EjRWeJq83vASNFZ4mrze8A[2]");
    assert_eq!(kafka(&ex[0]).topic_ids.get("id:EjRWeJq83vASNFZ4mrze8A").map(String::as_str), Some("orders"));
    let cluster = crate::resolve::ClusterState::default();
    let mut names = crate::resolve::TopicNames::default();
    let mut records = ex.iter().map(|e| crate::correlate::record(e.clone(), 1, None, &cluster));
    let (metadata, mut fetch) = (records.next().unwrap(), records.next().unwrap());
    names.name(&mut fetch);
    assert_eq!(fetch.detail.request_line(), "Fetch id:EjRWeJq83vASNFZ4mrze8A[2]", "nothing learned yet");
    names.learn(&metadata);
    names.name(&mut fetch);
    assert_eq!(fetch.detail.request_line(), "Fetch orders[2]");
    assert_eq!(fetch.kafka().and_then(|k| k.topic.as_deref()), Some("orders"));
    let k = kafka(&ex[1]);
    assert_eq!((k.records_bytes, k.error.as_deref()), (Some(10), None));
    // An id no Metadata response named is all there is, as Kafka writes ids.
    let unseen = uuid::Uuid::from_u128(0x77d0_bf5f_6cc0_44bf_a7a4_2f9b_5e32_34ab);
    let fetch = FetchRequest::default().with_topics(vec![fetch_request::FetchTopic::default().with_topic_id(unseen)]);
    let ex = run(&[(C, request(ApiKey::Fetch, 13, 3, &fetch))]);
    assert_eq!(ex[0].detail.request_line(), "Fetch id:d9C_X2zARL-npC-bXjI0qw");
}

#[test]
fn a_fetch_in_a_session_that_names_nothing_reads_the_topics_whose_records_came_back() {
    // KIP-227: after the session's first Fetch a request lists only the partitions that changed.
    let fetch = FetchRequest::default().with_session_id(7).with_session_epoch(3);
    let records = |p: i32, n: &'static [u8]| {
        fetch_response::PartitionData::default().with_partition_index(p).with_records(Some(Bytes::from_static(n)))
    };
    let answer = FetchResponse::default().with_session_id(7).with_responses(vec![
        fetch_response::FetchableTopicResponse::default()
            .with_topic(topic("orders"))
            .with_partitions(vec![records(0, b""), records(1, b"0123")]),
        fetch_response::FetchableTopicResponse::default()
            .with_topic(topic("idle"))
            .with_partitions(vec![records(0, b"")]),
    ]);
    let ex = run(&[(C, request(ApiKey::Fetch, 12, 4, &fetch)), (S, response(ApiKey::Fetch, 12, 4, &answer))]);
    let k = kafka(&ex[0]);
    let topics: Vec<(&str, &[i32])> = k.topics.iter().map(|t| (t.name.as_str(), t.partitions.as_slice())).collect();
    assert_eq!(topics, vec![("orders", &[1][..])], "the topic that returned records, not the idle one");
    assert_eq!((k.topic.as_deref(), k.partition, k.records_bytes), (Some("orders"), Some(1), Some(4)));
    // A topic the request named is not named twice.
    let named =
        FetchRequest::default().with_topics(vec![fetch_request::FetchTopic::default().with_topic(topic("orders"))]);
    let ex = run(&[(C, request(ApiKey::Fetch, 12, 5, &named)), (S, response(ApiKey::Fetch, 12, 5, &answer))]);
    assert_eq!(kafka(&ex[0]).topics.len(), 1);
}

#[test]
fn a_request_left_unanswered_goes_out_when_a_later_one_is_answered() {
    let md = kafka_protocol::messages::MetadataRequest::default();
    let ex = run(&[
        (C, request(ApiKey::Metadata, 12, 1, &md)),
        (C, request(ApiKey::Metadata, 12, 2, &md)),
        (S, response(ApiKey::Metadata, 12, 2, &MetadataResponse::default())),
    ]);
    let ids: Vec<(i32, bool)> = ex.iter().map(|e| (kafka(e).correlation_id, e.response_ts_us.is_some())).collect();
    assert_eq!(ids, [(1, false), (2, true)]);
    assert!(ex[0].detail_is_error_for_test());
}

#[test]
fn a_huge_count_in_a_small_frame_is_refused_not_allocated() {
    // Metadata v4 whose topic array claims two billion entries in a few bytes (kafka-protocol-rs
    // PR #152's case, larger): the published crate asks for over 100 GiB here and aborts.
    let mut body = b"\x00\x03\x00\x04\x00\x00\x00\x09\x00\x00".to_vec();
    body.extend_from_slice(b"\x7f\xff\xff\xff\xb6");
    let steps = [(C, framed(&body))];
    let ex = run_on(9092, true, &steps);
    assert_eq!(ex.len(), 1, "{ex:?}");
    let k = kafka(&ex[0]);
    assert_eq!((k.operation.as_str(), k.correlation_id, k.unread.as_deref()), ("Metadata", 9, Some("malformed")));
}

#[test]
fn a_frame_larger_than_what_is_held_keeps_its_header() {
    let big = ProduceRequest::default().with_acks(-1).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(topic("logs")).with_partition_data(vec![
            produce_request::PartitionProduceData::default().with_records(Some(Bytes::from(vec![0u8; 2 << 20]))),
        ]),
    ]);
    let frame = request(ApiKey::Produce, 9, 5, &big);
    let mut steps: Vec<(Dir, Vec<u8>)> = frame.chunks(64 * 1024).map(|c| (C, c.to_vec())).collect();
    steps.push((S, response(ApiKey::Produce, 9, 5, &ProduceResponse::default())));
    let ex = run(&steps);
    assert_eq!(ex.len(), 1);
    let k = kafka(&ex[0]);
    assert_eq!((k.operation.as_str(), k.correlation_id, k.unread.as_deref()), ("Produce", 5, Some("large")));
    assert_eq!(ex[0].request_size, frame.len() as u64);
    assert!(ex[0].response_ts_us.is_some());
}

#[test]
fn joined_mid_stream_on_kafkas_port_it_reads_from_the_next_request() {
    let md = kafka_protocol::messages::MetadataRequest::default();
    let ex = run_on(
        9092,
        false,
        &[
            // The tail of a response whose request came before the capture.
            (S, b"\x00\x01\x02\x03 tail of a fetch response".to_vec()),
            (C, request(ApiKey::Metadata, 12, 40, &md)),
            (S, response(ApiKey::Metadata, 12, 40, &MetadataResponse::default())),
        ],
    );
    assert_eq!(ex.len(), 1, "{ex:?}");
    assert_eq!(kafka(&ex[0]).correlation_id, 40);
    assert!(ex[0].response_ts_us.is_some());
}

#[test]
fn bytes_that_are_not_kafka_are_not_taken_for_it() {
    assert!(super::looks_like_request(API_VERSIONS_V3));
    for other in
        [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], b"*1\r\n$4\r\nPING\r\n", b"\x16\x03\x01\x00\xa5\x01\x00\x00"]
    {
        assert!(!super::looks_like_request(other), "{other:?}");
    }
    // An API key no version of Kafka has.
    let mut unknown = API_VERSIONS_V3.to_vec();
    unknown[4..6].copy_from_slice(&999i16.to_be_bytes());
    assert!(!super::looks_like_request(&unknown));
}

impl Exchange {
    /// `Record::is_error` for an exchange that is not a record yet.
    fn detail_is_error_for_test(&self) -> bool {
        let k = kafka(self);
        k.error.is_some() || (self.response_ts_us.is_none() && !k.no_response)
    }
}

#[test]
fn a_first_request_split_after_its_size_is_read_whole_when_joined_mid_stream() {
    // A pooled connection joined mid-stream whose first request seen came in two segments, its
    // size alone first: the first bytes are too few to tell Kafka by, and must not decide.
    let md = kafka_protocol::messages::MetadataRequest::default();
    let first = request(ApiKey::Metadata, 12, 40, &md);
    let ex = run_on(
        9092,
        false,
        &[
            (C, first[..4].to_vec()),
            (C, first[4..].to_vec()),
            (S, response(ApiKey::Metadata, 12, 40, &MetadataResponse::default())),
            (C, request(ApiKey::Metadata, 12, 41, &md)),
            (S, response(ApiKey::Metadata, 12, 41, &MetadataResponse::default())),
        ],
    );
    let ids: Vec<i32> = ex.iter().map(|e| kafka(e).correlation_id).collect();
    assert_eq!(ids, [40, 41], "{ex:?}");
}
