//! What every benchmark shares: the machine it ran on, printed next to its numbers.

/// The core count and CPU model, as the benchmarks print them next to their numbers.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

/// A valid BSN from a counter: eight digits and the elfproef check digit; different `n` give
/// different BSNs.
#[allow(dead_code)] // not every benchmark numbers its persons
pub fn bsn(n: u64) -> String {
    let mut k = n;
    loop {
        let eight = 10_000_000 + k % 89_999_999;
        if let Some(check) = kring::devnet::elfproef_check_digit(eight as u32) {
            return format!("{eight:08}{check}");
        }
        k += 100_000_000;
    }
}
