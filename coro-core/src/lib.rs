//! coro-core: tasks, `sync_wait`, `when_all`, `when_any`, generators and stop tokens.
