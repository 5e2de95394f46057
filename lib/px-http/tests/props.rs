//! Property tests: head parsing and the chunked codec never panic on arbitrary input, valid heads
//! survive a serialise/parse round trip, and encoded chunked bodies pass through unchanged.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use proptest::prelude::*;
use px_http::{
    BodyFraming, ConnectionDirective, ForwardOptions, HeadLimits, RequestHead, ResponseHead,
    chunked, copy_body, write_request_head,
};
use tokio::io::BufReader;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Passes `input` through `copy_body` with a reader buffer of `cap` bytes.
fn pass(
    input: &[u8],
    framing: BodyFraming,
    cap: usize,
) -> (Result<u64, px_http::CopyError>, Vec<u8>) {
    block_on(async {
        let mut r = BufReader::with_capacity(cap, input);
        let mut out = Vec::new();
        let res = copy_body(&mut r, &mut out, framing, &mut Vec::new()).await;
        (res, out)
    })
}

/// Decodes a chunked body (test oracle, independent of the copier).
fn decode(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = s.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = chunked::parse_chunk_size_line(&s[..nl]).unwrap() as usize;
        s = &s[nl + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&s[..size]);
        s = &s[size + 2..];
    }
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9-]{0,15}"
}

fn value() -> impl Strategy<Value = String> {
    "[ -~]{0,40}".prop_map(|v| v.trim().to_owned())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn request_parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = RequestHead::parse(&Bytes::from(data.clone()), 16);
        let _ = ResponseHead::parse(&Bytes::from(data.clone()), 16);
        let limits = HeadLimits { max_size: 256, max_headers: 8 };
        block_on(async {
            let _ = RequestHead::read(&mut BufReader::with_capacity(7, &data[..]), &limits).await;
            let _ = ResponseHead::read(&mut BufReader::with_capacity(7, &data[..]), &limits).await;
        });
    }

    #[test]
    fn request_text_never_panics(line in "[A-Z]{1,7} [ -~]{0,60} HTTP/1\\.[01]", hs in proptest::collection::vec("[ -~]{0,40}", 0..6)) {
        let mut s = line;
        s.push_str("\r\n");
        for h in hs {
            s.push_str(&h);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        if let Ok(head) = RequestHead::parse(&Bytes::from(s), 16) {
            let _ = px_http::request_framing(&head);
            let _ = head.authority();
        }
    }

    #[test]
    fn request_round_trip(
        method in "[A-Z]{1,8}",
        host in "[a-z][a-z0-9.-]{0,20}",
        port in 1u16..,
        path in "/[!-~]{0,30}",
        fields in proptest::collection::vec((token(), value()), 0..10),
    ) {
        prop_assume!(method != "CONNECT");
        let mut text = format!("{method} http://{host}:{port}{path} HTTP/1.1\r\n");
        for (n, v) in &fields {
            text.push_str(&format!("{n}: {v}\r\n"));
        }
        text.push_str("\r\n");
        let head = match RequestHead::parse(&Bytes::from(text), 64) {
            Ok(h) => h,
            Err(_) => return Ok(()), // e.g. more than one Host among the random fields
        };
        let opts = ForwardOptions { absolute_form: true, connection: ConnectionDirective::Omit, keep_upgrade: true };
        let mut out = Vec::new();
        write_request_head(&head, &opts, &mut out);
        let again = RequestHead::parse(&Bytes::from(out.clone()), 64).unwrap();
        prop_assert_eq!(&again.method, &head.method);
        prop_assert_eq!(&again.target, &head.target);
        let mut out2 = Vec::new();
        write_request_head(&again, &opts, &mut out2);
        prop_assert_eq!(out, out2);
    }

    #[test]
    fn chunked_round_trip(
        pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..12),
        cap in 1usize..600,
    ) {
        let mut encoded = Vec::new();
        for p in &pieces {
            chunked::encode_chunk(p, &mut encoded);
        }
        chunked::encode_last_chunk(&mut encoded);
        let (res, out) = pass(&encoded, BodyFraming::Chunked, cap);
        prop_assert_eq!(res.unwrap(), encoded.len() as u64);
        prop_assert_eq!(&out, &encoded);
        prop_assert_eq!(decode(&out), pieces.concat());
    }

    #[test]
    fn chunked_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600), cap in 1usize..64) {
        let (res, out) = pass(&data, BodyFraming::Chunked, cap);
        if let Ok(n) = res {
            prop_assert_eq!(n as usize, out.len());
            prop_assert!(data.starts_with(&out));
        }
    }

    #[test]
    fn chunked_text_never_panics(
        lines in proptest::collection::vec("[0-9a-fA-F]{0,18}[ ;=a-z\"]{0,6}(\r\n|\n|)[a-z]{0,20}(\r\n)?", 0..8),
        cap in 1usize..32,
    ) {
        let data = lines.concat();
        let (res, out) = pass(data.as_bytes(), BodyFraming::Chunked, cap);
        if res.is_ok() {
            prop_assert!(data.as_bytes().starts_with(&out));
        }
    }
}
