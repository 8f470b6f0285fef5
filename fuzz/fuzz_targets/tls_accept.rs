//! Arbitrary bytes where a ClientHello should be: the server side of our
//! TLS (`TlsAcceptor::accept` over a coro stream) must end in an error or a
//! stream, never a panic or a hang (the handshake timeout bounds it).
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use coro::io::{DriverKind, IoScheduler, IoSchedulerOptions};
use coro::net::tls::{self, TlsAcceptor};
use coro::net::tcp::{TcpListener, TcpStream};
use libfuzzer_sys::fuzz_target;

struct World {
    sched: IoScheduler,
    acceptor: TlsAcceptor,
    listener: Arc<TcpListener>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let chain = vec![cert.cert.der().clone()];
        let key = rustls_key(&cert);
        let config = tls::server_config(chain, key).unwrap();
        let sched = IoScheduler::new(IoSchedulerOptions {
            driver: DriverKind::Epoll,
            ..Default::default()
        })
        .unwrap();
        let listener = Arc::new(TcpListener::bind(&sched, "127.0.0.1:0").unwrap());
        World {
            sched,
            listener,
            acceptor: TlsAcceptor::new(Arc::new(config))
                .with_handshake_timeout(Duration::from_millis(200)),
        }
    })
}

fn rustls_key(c: &rcgen::CertifiedKey) -> tls::rustls::pki_types::PrivateKeyDer<'static> {
    tls::rustls::pki_types::PrivatePkcs8KeyDer::from(c.key_pair.serialize_der()).into()
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let acceptor = w.acceptor.clone();
    let listener = w.listener.clone();
    let s = w.sched.clone();
    let bytes = data.to_vec();
    let h = w.sched.spawn(async move {
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = coro::when_all!(TcpStream::connect(&s, addr), listener.accept()).await;
        let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
        let feed = async {
            let (r, _) = client.write_all(bytes).await;
            let _ = r;
            let _ = client.shutdown(std::net::Shutdown::Write);
            client
        };
        let (client, accepted) = coro::when_all!(feed, acceptor.accept(server)).await;
        // Garbage must not produce a usable stream; if it did (it cannot
        // here: no client ever finishes a handshake), reading must still end.
        if let Ok(tls) = accepted {
            let _ = tls.read(Vec::with_capacity(64)).await;
        }
        drop(client);
    });
    coro::sync_wait(h).expect("accept task panicked");
});
