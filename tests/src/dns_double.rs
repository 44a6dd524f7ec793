//! A DNS test double: a tiny UDP name server on a loopback address of its
//! own (`127.x.y.z:53`, picked at random so that parallel tests do not
//! meet), answering SRV and A questions from a fixed table, NXDOMAIN for
//! names it does not know, and recording every question it was asked.
//! Test code only: it is no resolver and serves no real zone.
//!
//! Clients find it through `/etc/resolv.conf`, which a test must not change
//! on the machine: [`DnsDouble::command`] runs a program in a private mount
//! namespace (`unshare --mount`, as root) with a test `resolv.conf` bound
//! over `/etc/resolv.conf`, so only that process sees the double.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use palisade_test_support::Staging;

const TYPE_A: u16 = 1;
const TYPE_SRV: u16 = 33;

/// What the double answers: SRV records (`(target, port)`) and A records,
/// by lower-case name without the trailing dot.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    srv: HashMap<String, Vec<(String, u16)>>,
    a: HashMap<String, Ipv4Addr>,
}

impl Zone {
    pub fn srv(mut self, name: &str, target: &str, port: u16) -> Self {
        self.srv.entry(name.to_ascii_lowercase()).or_default().push((target.to_string(), port));
        self
    }

    pub fn a(mut self, name: &str, addr: Ipv4Addr) -> Self {
        self.a.insert(name.to_ascii_lowercase(), addr);
        self
    }

    fn knows(&self, name: &str) -> bool {
        self.srv.contains_key(name) || self.a.contains_key(name)
    }
}

/// A question the double was asked: the name (lower case) and its type
/// (1 for A, 28 for AAAA, 33 for SRV...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub name: String,
    pub qtype: u16,
}

pub struct DnsDouble {
    addr: Ipv4Addr,
    staging: Staging,
    questions: Arc<Mutex<Vec<Question>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A loopback address nobody else picks: 127.<random>.<random>.<random>,
/// never 127.0.0.x.
fn random_loopback(salt: u32) -> Ipv4Addr {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut x = nanos ^ (std::process::id().wrapping_mul(2_654_435_761)) ^ salt.wrapping_mul(40_503);
    x ^= x >> 13;
    x = x.wrapping_mul(0x5bd1_e995);
    x ^= x >> 15;
    let [_, b, c, d] = x.to_be_bytes();
    Ipv4Addr::new(127, b.max(1), c, d.clamp(1, 254))
}

impl DnsDouble {
    /// Serve `zone` on a fresh loopback address, port 53 (needs root).
    pub fn start(label: &str, zone: Zone) -> Self {
        let mut tries = 0u32;
        let (socket, addr) = loop {
            let addr = random_loopback(tries);
            match UdpSocket::bind(SocketAddr::from((addr, 53))) {
                Ok(s) => break (s, addr),
                Err(e) if tries < 20 => {
                    eprintln!("dns double: bind {addr}:53: {e}; trying another address");
                    tries += 1;
                }
                Err(e) => panic!("dns double: cannot bind a loopback address on port 53 (root needed): {e}"),
            }
        };
        socket.set_read_timeout(Some(Duration::from_millis(100))).expect("dns double: read timeout");
        let questions = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (questions, stop) = (Arc::clone(&questions), Arc::clone(&stop));
            std::thread::spawn(move || serve(&socket, &zone, &questions, &stop))
        };
        let staging = Staging::new(&format!("dns-{label}"));
        DnsDouble { addr, staging, questions, stop, thread: Some(thread) }
    }

    /// The address it answers on (port 53).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Every question asked so far, in order.
    pub fn questions(&self) -> Vec<Question> {
        self.questions.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forget the questions asked so far.
    pub fn clear_questions(&self) {
        self.questions.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// A `resolv.conf` whose first name server is a loopback address with
    /// nothing listening (a client moves on to the next, as glibc does),
    /// then the double, among the usual other lines.
    pub fn resolv_conf(&self) -> PathBuf {
        let mut dead = random_loopback(99);
        while dead == self.addr {
            dead = random_loopback(dead.to_bits());
        }
        let path = self.staging.path().join("resolv.conf");
        let text = format!(
            "# written by the DNS test double\nsearch palisade.test\noptions timeout:1 attempts:1\n\
             nameserver {dead}\nnameserver {}\n",
            self.addr
        );
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// `program` to run in a private mount namespace where
    /// `/etc/resolv.conf` is [`DnsDouble::resolv_conf`]; add arguments
    /// with `.args`. The machine's own `/etc/resolv.conf` is not touched.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#)
            .arg(self.resolv_conf())
            .arg(program);
        cmd
    }

    /// `palisadectl -c <config> <args>` behind the double, the config
    /// naming the scope `demo`, the plugin directory, `retry_timeout: 4` and
    /// the DCS section `dcs` (for example `etcd3: {"srv": "x.palisade.test"}`),
    /// written into `staging`. Returns success, stdout, stderr and the
    /// questions asked.
    pub fn palisadectl(&self, staging: &Staging, dcs: &str, args: &[&str]) -> (bool, String, String, Vec<Question>) {
        let ctl = palisade_test_support::target_dir().join("palisadectl");
        assert!(ctl.exists(), "{} is missing: cargo build -p palisade-ctl", ctl.display());
        let config = staging.path().join("palisadectl.yml");
        let yaml = format!(
            "scope: demo\nnamespace: /service/\nplugin_dir: {}\nretry_timeout: 4\n{dcs}\n",
            palisade_test_support::target_dir().display()
        );
        std::fs::write(&config, yaml).unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        self.clear_questions();
        let out = self
            .command(&ctl)
            .arg("-c")
            .arg(&config)
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap_or_else(|e| panic!("run palisadectl under unshare: {e}"));
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr), self.questions())
    }
}

impl Drop for DnsDouble {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(socket: &UdpSocket, zone: &Zone, questions: &Mutex<Vec<Question>>, stop: &AtomicBool) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some((question, end)) = parse_question(&buf[..n]) else {
            continue;
        };
        questions.lock().unwrap_or_else(|p| p.into_inner()).push(question.clone());
        let answer = answer(&buf[..n], end, &question, zone);
        let _ = socket.send_to(&answer, from);
    }
}

/// The single question of a query, and where it ends.
fn parse_question(msg: &[u8]) -> Option<(Question, usize)> {
    if msg.len() < 12 || msg[2] & 0x80 != 0 || u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return None;
    }
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*msg.get(pos)?);
        if len == 0 {
            pos += 1;
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(msg.get(pos + 1..pos + 1 + len)?).to_ascii_lowercase());
        pos += 1 + len;
    }
    let qtype = u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]);
    Some((Question { name: labels.join("."), qtype }, pos + 4))
}

fn encode_name(out: &mut Vec<u8>, name: &str) {
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// The answer to a query whose question ends at `end`: the records of the
/// name and type, NOERROR without records when the name has others only,
/// NXDOMAIN when the double does not know the name.
fn answer(query: &[u8], end: usize, q: &Question, zone: &Zone) -> Vec<u8> {
    let mut records: Vec<(u16, Vec<u8>)> = Vec::new();
    match q.qtype {
        TYPE_SRV => {
            for (target, port) in zone.srv.get(&q.name).into_iter().flatten() {
                let mut rdata = vec![0, 10, 0, 5];
                rdata.extend_from_slice(&port.to_be_bytes());
                encode_name(&mut rdata, target);
                records.push((TYPE_SRV, rdata));
            }
        }
        TYPE_A => {
            if let Some(addr) = zone.a.get(&q.name) {
                records.push((TYPE_A, addr.octets().to_vec()));
            }
        }
        _ => {}
    }
    let rcode = if zone.knows(&q.name) { 0 } else { 3 };
    let mut out = Vec::with_capacity(end + records.len() * 40);
    out.extend_from_slice(&query[..2]);
    out.push(0x84 | (query[2] & 0x79)); // response, authoritative, opcode and RD copied
    out.push(0x80 | rcode); // recursion available
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..end]);
    for (rtype, rdata) in records {
        out.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&[0, 1, 0, 0, 0, 5]); // class IN, ttl 5 s
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    out
}
