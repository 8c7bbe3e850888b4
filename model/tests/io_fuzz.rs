//! Malformed input never panics: random bytes as frames, random text as spec files, and a
//! server that gets garbage on one connection keeps serving the others.

use std::cell::RefCell;
use std::rc::Rc;

use model::io::frame::read_frame;
use model::io::{Client, Incoming, Server, ServerConfig};
use model::spec::parse_spec;
use model::{Engine, EngineConfig};
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

/// Spec-like text: keywords, names, SQL blocks, quotes, punctuation and comments.
const SPEC_TOKENS: &str = "(setup|teardown|session|step|permutation|[a-z]{1,3}|\\{[a-z ;]{0,8}\\}\
                           |\"[a-z]{0,3}\"?|[()*,#\\n ]){0,30}";

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_are_an_error_or_a_frame(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                            json in "[\\[\\]{}\":,A-Za-z0-9 ]{0,40}") {
        runtime().block_on(async {
            for payload in [bytes.clone(), json.clone().into_bytes()] {
                let (mut a, mut b) = tokio::io::duplex(256);
                let len = (payload.len() as u32).to_be_bytes();
                a.write_all(&len).await.unwrap();
                a.write_all(&payload).await.unwrap();
                drop(a);
                let _ = read_frame::<_, Incoming>(&mut b).await;
                // Raw bytes with no length prefix at all.
                let (mut a, mut b) = tokio::io::duplex(256);
                a.write_all(&payload).await.unwrap();
                drop(a);
                let _ = read_frame::<_, Incoming>(&mut b).await;
            }
        });
    }

    #[test]
    fn random_spec_text_never_panics(text in SPEC_TOKENS) {
        let _ = parse_spec(&text, "fuzz.spec");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn garbage_on_one_connection_does_not_hurt_another() {
    tokio::task::LocalSet::new()
        .run_until(async {
            let engine = Rc::new(RefCell::new(Engine::new(EngineConfig::default())));
            let server = Server::start(engine, ServerConfig::default());
            let (mut bad, bad_server_side) = tokio::io::duplex(1024);
            let s = server.clone();
            let bad_task =
                tokio::task::spawn_local(async move { s.serve_connection(bad_server_side).await });
            bad.write_all(&[0, 0, 0, 5, b'{', b'x', b'y', b'z', b'!']).await.unwrap();
            let err = bad_task.await.unwrap().unwrap_err();
            assert!(!err.is_connection_lost(), "a decode error, not a lost connection: {err}");

            let (good, good_server_side) = tokio::io::duplex(1024);
            let s = server.clone();
            tokio::task::spawn_local(async move { s.serve_connection(good_server_side).await });
            let mut client = Client::new(good);
            let rows = client.query("SELECT 1 + 1 AS two", &[]).await.unwrap().unwrap();
            assert_eq!(rows.rows, vec![vec![model::Value::Int(2)]]);
        })
        .await;
}
