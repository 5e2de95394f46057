//! The kernel calls the worker runtimes need that std, tokio and socket2 do
//! not wrap: pinning a thread to CPUs (`sched_setaffinity(2)`) and attaching
//! a classic BPF program to a SO_REUSEPORT group
//! (`SO_ATTACH_REUSEPORT_CBPF`). The only `unsafe` of this crate lives here.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;

/// How many CPU ids a `cpu_set_t` holds.
pub(crate) const CPU_SET_BITS: usize = 8 * std::mem::size_of::<libc::cpu_set_t>();

/// Pins the calling thread to `cpus`.
pub(crate) fn pin_current_thread(cpus: &[usize]) -> io::Result<()> {
    if cpus.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no CPU given"));
    }
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= CPU_SET_BITS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CPU id {cpu} is out of range"),
            ));
        }
        // SAFETY: `cpu` is below the set's size, checked just above.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t and the
    // size passed is its size.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `SO_ATTACH_REUSEPORT_CBPF` (asm-generic/socket.h; libc only has it for Android).
#[cfg(not(any(target_arch = "sparc64", target_arch = "mips", target_arch = "mips64")))]
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The program: the socket index is the client IP (IPv4, or the last 32 bits
/// of IPv6) modulo the group size, so one client always reaches one socket.
/// The loads are relative to the network header (`SKF_NET_OFF`), since a
/// reuseport program sees the packet from its TCP payload on.
fn client_ip_program(sockets: u32) -> Vec<libc::sock_filter> {
    let net = |off: i32| (libc::SKF_NET_OFF + off) as u32;
    vec![
        // A = first byte of the IP header; A >>= 4: the IP version
        stmt(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, net(0)),
        stmt(libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K, 4),
        // version 6: skip the IPv4 load
        jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 6, 2, 0),
        // IPv4 source address
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, net(12)),
        stmt(libc::BPF_JMP | libc::BPF_JA, 1),
        // IPv6: the last 32 bits of the source address
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, net(20)),
        stmt(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K, sockets),
        stmt(libc::BPF_RET | libc::BPF_A, 0),
    ]
}

/// Makes the SO_REUSEPORT group of `socket` pick its socket by client IP
/// among `sockets` sockets (the group's sockets in the order they listened).
#[cfg(not(any(target_arch = "sparc64", target_arch = "mips", target_arch = "mips64")))]
pub(crate) fn attach_client_ip_balancing(socket: &impl AsRawFd, sockets: usize) -> io::Result<()> {
    let n = u32::try_from(sockets)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad socket count"))?;
    let mut prog = client_ip_program(n);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel
    // copies the program and reads no more than `len` instructions.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// On architectures whose socket option numbers differ, the kernel's hash stays.
#[cfg(any(target_arch = "sparc64", target_arch = "mips", target_arch = "mips64"))]
pub(crate) fn attach_client_ip_balancing(_: &impl AsRawFd, _: usize) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_ATTACH_REUSEPORT_CBPF is not wired for this architecture",
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn allowed_cpus() -> Vec<usize> {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list:"))
            .unwrap();
        let mut out = Vec::new();
        for part in line["Cpus_allowed_list:".len()..].trim().split(',') {
            match part.split_once('-') {
                Some((a, b)) => out.extend(a.parse::<usize>().unwrap()..=b.parse().unwrap()),
                None => out.push(part.parse().unwrap()),
            }
        }
        out
    }

    #[test]
    fn pins_a_thread() {
        let first = allowed_cpus()[0];
        let got = std::thread::spawn(move || {
            pin_current_thread(&[first]).unwrap();
            allowed_cpus()
        })
        .join()
        .unwrap();
        assert_eq!(got, vec![first]);
        assert!(pin_current_thread(&[]).is_err());
        assert!(pin_current_thread(&[CPU_SET_BITS]).is_err());
    }

    #[test]
    fn cbpf_attaches_to_a_reuseport_group() {
        use socket2::{Domain, Socket, Type};
        let a = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        a.set_reuse_port(true).unwrap();
        a.bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        a.listen(8).unwrap();
        attach_client_ip_balancing(&a, 2).unwrap();
        assert!(attach_client_ip_balancing(&a, 0).is_err());
    }
}
