//! What the running kernel's io_uring supports, probed once per ring.
//!
//! Each optional feature the driver uses is looked up here at start-up
//! (`IORING_REGISTER_PROBE` for opcodes, the setup parameters for features);
//! a missing one selects the plain path, never an error.

use io_uring::{IoUring, opcode};

/// Optional io_uring capabilities of the running kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// `IORING_FEAT_NODROP`: completions are never lost on CQ overflow.
    pub nodrop: bool,
    /// `IORING_FEAT_FAST_POLL`: ops on not-ready sockets arm an internal
    /// poll instead of a worker thread.
    pub fast_poll: bool,
    /// The probe opcode list could be read at all (Linux 5.6+).
    pub probed: bool,
    /// `IORING_OP_SEND_ZC` (zero-copy send, Linux 6.0+).
    pub send_zc: bool,
    /// `IORING_OP_SOCKET` (Linux 5.19+), which also marks the kernels that
    /// have multishot accept.
    pub socket: bool,
    /// `IORING_OP_ASYNC_CANCEL` (every kernel we accept has it).
    pub async_cancel: bool,
    /// `IORING_OP_OPENAT` (Linux 5.6+): [`crate::op::open_at`] runs in the
    /// ring; without it, on the blocking pool.
    pub openat: bool,
    /// `IORING_OP_STATX` (Linux 5.6+): [`crate::op::statx`].
    pub statx: bool,
    /// `IORING_OP_RENAMEAT` (Linux 5.11+): [`crate::op::rename_at`].
    pub renameat: bool,
    /// `IORING_OP_UNLINKAT` (Linux 5.11+): [`crate::op::unlink_at`].
    pub unlinkat: bool,
    /// `IORING_OP_MKDIRAT` (Linux 5.15+): [`crate::op::mkdir_at`].
    pub mkdirat: bool,
    /// `IORING_FEAT_RECVSEND_BUNDLE` (Linux 6.10+), which also implies
    /// multishot recv with provided buffer rings.
    pub recvsend_bundle: bool,
    /// Stream reads go through a receive queue: one multishot receive per
    /// socket into a ring of provided buffers (Linux 6.0+, and
    /// [`UringOptions::multishot_recv`](crate::UringOptions::multishot_recv)).
    pub recv_multishot: bool,
    /// The ring is single-issuer with `IORING_SETUP_DEFER_TASKRUN`
    /// (a Spawn + Inline scheduler on Linux 6.1+).
    pub defer_taskrun: bool,
    /// The ring uses `IORING_SETUP_COOP_TASKRUN` (Linux 5.19+).
    pub coop_taskrun: bool,
}

impl Features {
    pub(crate) fn probe(ring: &IoUring) -> Features {
        let p = ring.params();
        let mut f = Features {
            nodrop: p.is_feature_nodrop(),
            fast_poll: p.is_feature_fast_poll(),
            recvsend_bundle: p.is_feature_recvsend_bundle(),
            ..Features::default()
        };
        let mut probe = io_uring::Probe::new();
        if ring.submitter().register_probe(&mut probe).is_ok() {
            f.probed = true;
            f.send_zc = probe.is_supported(opcode::SendZc::CODE);
            f.socket = probe.is_supported(opcode::Socket::CODE);
            f.async_cancel = probe.is_supported(opcode::AsyncCancel::CODE);
            f.openat = probe.is_supported(opcode::OpenAt::CODE);
            f.statx = probe.is_supported(opcode::Statx::CODE);
            f.renameat = probe.is_supported(opcode::RenameAt::CODE);
            f.unlinkat = probe.is_supported(opcode::UnlinkAt::CODE);
            f.mkdirat = probe.is_supported(opcode::MkDirAt::CODE);
        }
        f
    }

    /// Forget the file-system opcodes, as on a kernel without them (the
    /// `inject_missing_fs_ops` test setting).
    pub(crate) fn without_fs_ops(mut self) -> Features {
        self.openat = false;
        self.statx = false;
        self.renameat = false;
        self.unlinkat = false;
        self.mkdirat = false;
        self
    }
}
