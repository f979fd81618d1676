//! The local end of a socket, read from the kernel's socket (an outbound connect's address
//! and port are only chosen by the kernel, so no argument carries them).

use sensor_abi::record::blob_slot;

use crate::{
    maps::off,
    record::Record,
    task::{file_of_fd, read},
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// `struct sockaddr_in`.
#[repr(C)]
struct SockaddrIn {
    family: u16,
    port_be: u16,
    addr: u32,
    zero: [u8; 8],
}

/// `struct sockaddr_in6`.
#[repr(C)]
struct SockaddrIn6 {
    family: u16,
    port_be: u16,
    flowinfo: u32,
    addr: [u8; 16],
    scope_id: u32,
}

/// Appends the local address of the current task's socket `fd` as a
/// [`blob_slot::LOCAL_ADDR`] blob, for IPv4 and IPv6 sockets.
#[inline(always)]
pub fn local_addr_blob(rec: &mut Record, fd: u64) {
    let file = file_of_fd(fd);
    let socket: u64 = read(file, off!(file_private_data));
    // Another thread may have put another file at this number since the call returned:
    // only a socket that points back at the file is read.
    if socket == 0 || read::<u64>(socket, off!(socket_file)) != file {
        return;
    }
    let sk: u64 = read(socket, off!(socket_sk));
    let family: u16 = read(sk, off!(sk_family));
    let port_be = read::<u16>(sk, off!(sk_num)).to_be();
    match family {
        AF_INET => {
            let addr = SockaddrIn { family, port_be, addr: read(sk, off!(sk_rcv_saddr)), zero: [0; 8] };
            rec.struct_blob(blob_slot::LOCAL_ADDR, &addr);
        }
        AF_INET6 => {
            let addr = SockaddrIn6 { family, port_be, flowinfo: 0, addr: read(sk, off!(sk_v6_rcv_saddr)), scope_id: 0 };
            rec.struct_blob(blob_slot::LOCAL_ADDR, &addr);
        }
        _ => {}
    }
}
