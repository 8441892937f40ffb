// sled allocates and copies on every write (its leaves are copy-on-write): mimalloc spends far
// less time there than glibc's malloc, and registrations run at about twice the rate. It is
// built without transparent huge pages and told to return freed memory at once, which keeps a
// loaded node's resident memory under 100 MB. See BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (the same number in mimalloc 2 and 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // SAFETY: options are set before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    kring::cli::main()
}
