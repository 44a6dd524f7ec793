//! The campaign's network: one network namespace per node, made by the
//! campaign itself (as root) and removed on every way out.
//!
//! Each node's namespace `pch<X>n<i>` has two links:
//! - a *cluster link*: a veth pair whose root end `pch<X>c<i>` is a port of
//!   the bridge `pch<X>br` (address `10.X.0.1/24`), the node's end
//!   `pch<X>c<i>p` holding `10.X.0.<10+i>/24`. Replication, the daemons'
//!   REST calls to each other and the DCS (through [`Relay`] on the bridge
//!   address) go over it, and the daemons advertise these addresses;
//! - a *control link*: a veth pair to the root namespace only, `10.X.<i>.1`
//!   (root end `pch<X>k<i>`) to `10.X.<i>.2` (node end `pch<X>k<i>p`), which
//!   the campaign's writers and watcher use.
//!
//! A partition sets the root end of the node's cluster link down: the node
//! keeps its address but nothing it sends over that link arrives (and
//! nothing reaches it), while the campaign still sees it and writes to it
//! over the control link, which is where a split brain would show.
//!
//! `X` (the second octet) is chosen per run, free of any address and name
//! already on the machine, under a lock file, so parallel campaigns never
//! clash. Only these private addresses and 127.0.0.0/8 are used.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Run `ip` with `args`; the error says which command failed and why.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip` (is iproute2 installed?): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn ip_output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The namespaces and links of one campaign; dropping it removes them.
pub struct Net {
    /// The second octet of every address of this run.
    pub octet: u8,
    pub nodes: usize,
    /// Names made so far, removed on drop: namespaces, then links.
    namespaces: Vec<String>,
    links: Vec<String>,
}

impl Net {
    /// Make the bridge and `nodes` namespaces with their two links each.
    pub fn create(nodes: usize) -> Result<Net, String> {
        use std::os::fd::AsRawFd;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/tmp/palisade-chaos-net.lock")
            .map_err(|e| format!("/tmp/palisade-chaos-net.lock: {e}"))?;
        // SAFETY: flock on a file descriptor this function owns; released
        // when `lock` is closed at the end of this function.
        unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        let addresses = ip_output(&["-o", "-4", "addr", "show"]);
        let links = ip_output(&["-o", "link", "show"]);
        let namespaces = ip_output(&["netns", "list"]);
        let start = (std::process::id() as u64
            ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64))
            % 190;
        let octet = (0..190u64)
            .map(|k| (64 + (start + k) % 190) as u8)
            .find(|x| {
                !addresses.contains(&format!(" 10.{x}."))
                    && !links.contains(&format!("pch{x}"))
                    && !namespaces.contains(&format!("pch{x}"))
            })
            .ok_or("no free 10.X.0.0/16 range for the campaign's network")?;
        let mut net = Net { octet, nodes, namespaces: Vec::new(), links: Vec::new() };
        net.build()?;
        drop(lock);
        Ok(net)
    }

    fn build(&mut self) -> Result<(), String> {
        let br = self.bridge();
        ip(&["link", "add", &br, "type", "bridge"])?;
        self.links.push(br.clone());
        ip(&["addr", "add", &format!("{}/24", self.bridge_ip()), "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        for i in 0..self.nodes {
            let ns = self.namespace(i);
            ip(&["netns", "add", &ns])?;
            self.namespaces.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            // The cluster link.
            let (c, cp) = (self.cluster_link(i), format!("{}p", self.cluster_link(i)));
            ip(&["link", "add", &c, "type", "veth", "peer", "name", &cp])?;
            self.links.push(c.clone());
            ip(&["link", "set", &cp, "netns", &ns])?;
            ip(&["link", "set", &c, "master", &br])?;
            ip(&["link", "set", &c, "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", self.cluster_ip(i)), "dev", &cp])?;
            ip(&["-n", &ns, "link", "set", &cp, "up"])?;
            // The control link.
            let (k, kp) = (self.control_link(i), format!("{}p", self.control_link(i)));
            ip(&["link", "add", &k, "type", "veth", "peer", "name", &kp])?;
            self.links.push(k.clone());
            ip(&["link", "set", &kp, "netns", &ns])?;
            ip(&["addr", "add", &format!("10.{}.{}.1/24", self.octet, i + 1), "dev", &k])?;
            ip(&["link", "set", &k, "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", self.control_ip(i)), "dev", &kp])?;
            ip(&["-n", &ns, "link", "set", &kp, "up"])?;
        }
        Ok(())
    }

    pub fn bridge(&self) -> String {
        format!("pch{}br", self.octet)
    }

    /// The namespace of node `i` (0-based).
    pub fn namespace(&self, i: usize) -> String {
        format!("pch{}n{}", self.octet, i + 1)
    }

    fn cluster_link(&self, i: usize) -> String {
        format!("pch{}c{}", self.octet, i + 1)
    }

    fn control_link(&self, i: usize) -> String {
        format!("pch{}k{}", self.octet, i + 1)
    }

    /// The bridge's address in the root namespace (where the DCS relay listens).
    pub fn bridge_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octet, 0, 1)
    }

    /// Node `i`'s address on the cluster link (the one it advertises).
    pub fn cluster_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octet, 0, 10 + i as u8 + 1)
    }

    /// Node `i`'s address on its control link (the campaign's way in).
    pub fn control_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octet, i as u8 + 1, 2)
    }

    /// Cut node `i`'s cluster link (from the other nodes and the DCS).
    pub fn partition(&self, i: usize) -> Result<(), String> {
        ip(&["link", "set", &self.cluster_link(i), "down"])
    }

    /// Undo [`Net::partition`].
    pub fn heal(&self, i: usize) -> Result<(), String> {
        ip(&["link", "set", &self.cluster_link(i), "up"])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Removing a namespace removes the veth ends in it, and so the pairs.
        for ns in self.namespaces.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("chaos: {e}");
            }
        }
        for link in self.links.drain(..).rev() {
            // Most are gone with their namespace already.
            let _ = ip(&["link", "del", &link]);
        }
    }
}

/// A TCP relay in the root namespace: listens on `listen` (the bridge
/// address) and forwards every connection to `target` (the DCS on
/// 127.0.0.1). The nodes reach the DCS only through it, so over their
/// cluster link: a partitioned node loses the DCS too, the DCS's own
/// outages (stopped, frozen) show through as they are. Stopped on drop.
pub struct Relay {
    pub listen: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Relay {
    pub fn start(listen: SocketAddr, target: SocketAddr) -> Result<Relay, String> {
        let listener = TcpListener::bind(listen).map_err(|e| format!("relay on {listen}: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name(format!("relay-{listen}"))
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let _ = client.set_nonblocking(false);
                            let flag = flag.clone();
                            std::thread::spawn(move || Self::serve(client, target, flag));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Relay { listen, stop })
    }

    fn serve(client: TcpStream, target: SocketAddr, stop: Arc<AtomicBool>) {
        let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
            let _ = client.shutdown(Shutdown::Both);
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else { return };
        let stop2 = stop.clone();
        std::thread::spawn(move || Self::pump(c2, s2, stop2));
        Self::pump(server, client, stop);
    }

    /// Copy `from` to `to` until either ends or the relay stops.
    fn pump(mut from: TcpStream, mut to: TcpStream, stop: Arc<AtomicBool>) {
        let _ = from.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 16 * 1024];
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
