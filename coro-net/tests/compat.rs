//! The `futures_io` adapter on both drivers: `futures::io::copy`, a
//! line-codec exchange, and reads raced against timers losing no bytes.

mod common;

use std::time::Duration;

use common::{pattern, run, sched};
use coro_io::testing::Config;
use coro_net::tcp::{TcpListener, TcpStream};
use coro_net::unix::UnixStream;
use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use futures::stream::StreamExt;

coro_io::driver_tests!(
    futures_copy_echoes_a_mebibyte,
    line_codec_round_trip,
    raced_reads_lose_no_bytes,
    small_writes_then_inherent_close_deliver_everything,
    tokio_codec_through_tokio_util_compat,
);

fn futures_copy_echoes_a_mebibyte(cfg: Config) {
    let s = sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    run(&s, async move {
        let server = s2.spawn(async move {
            let (conn, _) = l.accept().await.unwrap();
            let (mut r, mut w) = conn.split();
            let n = futures::io::copy(&mut r, &mut w).await.unwrap();
            w.close().await.unwrap();
            n
        });
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        let (mut r, mut w) = c.split();
        let msg = pattern(1 << 20, 5);
        let m = msg.clone();
        let writer = s2.spawn(async move {
            AsyncWriteExt::write_all(&mut w, &m).await.unwrap();
            w.close().await.unwrap(); // flush + shutdown(Write)
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(server.await.unwrap(), 1 << 20);
        assert!(got == msg, "copy changed the bytes");
    });
    s.shutdown();
}

fn line_codec_round_trip(cfg: Config) {
    let s = sched(cfg);
    let (a, b) = UnixStream::pair(&s).unwrap();
    let s2 = s.clone();
    run(&s, async move {
        // A tiny request/response protocol framed by newlines.
        let server = s2.spawn(async move {
            let (r, mut w) = b.split();
            let mut lines = BufReader::new(r).lines();
            let mut served = 0;
            while let Some(line) = lines.next().await {
                let line = line.unwrap();
                let reply = format!("{}:{}\n", line.len(), line.to_uppercase());
                AsyncWriteExt::write_all(&mut w, reply.as_bytes())
                    .await
                    .unwrap();
                w.flush().await.unwrap();
                served += 1;
            }
            served
        });
        let (r, mut w) = a.split();
        let mut replies = BufReader::new(r).lines();
        for word in ["alpha", "", "gamma delta", &"x".repeat(10_000)] {
            AsyncWriteExt::write_all(&mut w, format!("{word}\n").as_bytes())
                .await
                .unwrap();
            w.flush().await.unwrap();
            let got = replies.next().await.unwrap().unwrap();
            assert_eq!(got, format!("{}:{}", word.len(), word.to_uppercase()));
        }
        w.close().await.unwrap();
        assert_eq!(server.await.unwrap(), 4);
    });
    s.shutdown();
}

fn raced_reads_lose_no_bytes(cfg: Config) {
    let s = sched(cfg);
    let (mut a, b) = UnixStream::pair(&s).unwrap();
    let s2 = s.clone();
    run(&s, async move {
        let msg = pattern(200_000, 7);
        let m = msg.clone();
        let writer = s2.spawn({
            let s3 = s2.clone();
            async move {
                for chunk in m.chunks(7_000) {
                    b.write_all(chunk.to_vec()).await.0.unwrap();
                    // Well past the reader's 50 us timeout even where the
                    // wait's timeout is whole milliseconds (epoll): with a
                    // gap of 200 us both timers fell due in one wake-up,
                    // the write landed first and no read ever timed out.
                    s3.sleep(Duration::from_millis(3)).await;
                }
                b
            }
        });
        // Every read races a very short timer; the dropped ones must not eat data.
        let mut got = Vec::new();
        let mut buf = [0u8; 3_000];
        let mut timeouts = 0u32;
        while got.len() < msg.len() {
            match s2
                .timeout(
                    Duration::from_micros(50),
                    AsyncReadExt::read(&mut a, &mut buf),
                )
                .await
            {
                Ok(n) => {
                    let n = n.unwrap();
                    assert!(n > 0, "early EOF");
                    got.extend_from_slice(&buf[..n]);
                }
                Err(_) => timeouts += 1,
            }
        }
        drop(writer.await.unwrap());
        assert!(
            got == msg,
            "bytes lost or reordered ({timeouts} reads timed out)"
        );
        assert!(
            timeouts > 0,
            "no read was ever cancelled: the test proved nothing"
        );
    });
    s.shutdown();
}

fn small_writes_then_inherent_close_deliver_everything(cfg: Config) {
    let s = sched(cfg);
    let (mut a, b) = UnixStream::pair(&s).unwrap();
    // A small receive buffer makes sends go short / pend.
    b.set_recv_buffer_size(4096).unwrap();
    a.set_send_buffer_size(4096).unwrap();
    let s2 = s.clone();
    run(&s, async move {
        let reader = s2.spawn(async move {
            let mut b = b;
            let mut v = Vec::new();
            b.read_to_end(&mut v).await.unwrap();
            v
        });
        let mut expect = Vec::new();
        for i in 0..2_000u32 {
            let piece = format!("{i},");
            AsyncWriteExt::write_all(&mut a, piece.as_bytes())
                .await
                .unwrap();
            expect.extend_from_slice(piece.as_bytes());
        }
        AsyncWriteExt::write_all(&mut a, &pattern(500_000, 1))
            .await
            .unwrap();
        expect.extend_from_slice(&pattern(500_000, 1));
        a.close().await.unwrap();
        assert!(reader.await.unwrap() == expect);
    });
    s.shutdown();
}

/// tokio's codec ecosystem on a coro stream: tokio-util's compat layer turns
/// our `futures_io` traits into tokio's, and `Framed<_, LinesCodec>` runs a
/// line protocol over a coro `TcpStream` on a coro scheduler (no tokio
/// runtime anywhere).
fn tokio_codec_through_tokio_util_compat(cfg: Config) {
    use futures::SinkExt;
    use tokio_util::codec::{Framed, LinesCodec};
    use tokio_util::compat::FuturesAsyncReadCompatExt;

    let s = sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    run(&s, async move {
        let server = s2.spawn(async move {
            let (conn, _) = l.accept().await.unwrap();
            let mut framed = Framed::new(conn.compat(), LinesCodec::new());
            let mut n = 0;
            while let Some(line) = framed.next().await {
                let line = line.unwrap();
                framed.send(line.to_uppercase()).await.unwrap();
                n += 1;
            }
            n
        });
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        let mut framed = Framed::new(c.compat(), LinesCodec::new());
        for i in 0..100 {
            framed.send(format!("line {i} of coro")).await.unwrap();
            let got = framed.next().await.unwrap().unwrap();
            assert_eq!(got, format!("LINE {i} OF CORO"));
        }
        drop(framed); // closes: the server's stream ends
        assert_eq!(server.await.unwrap(), 100);
    });
    s.shutdown();
}
