//! The cost of one rate-limit check: the in-process GCRA bucket (governor) on a hot tenant and
//! across 10,000 tenants, and the shared bucket in Redis (one Lua script round trip) when a
//! Redis answers at `TENANTD_BENCH_REDIS` (default `redis://127.0.0.1:6379`).
//!
//! `cargo bench -p tenantd-server --bench ratelimit`

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tenantd_core::ids::TenantId;
use tenantd_server::limits::{Limiter, RateLimits};

fn in_process(c: &mut Criterion) {
    let limiter = Limiter::default();
    let hot = TenantId::new();
    c.bench_function("in-process check, one tenant", |b| {
        b.iter(|| black_box(limiter.check(hot, "api_requests", u32::MAX)))
    });
    let tenants: Vec<TenantId> = (0..10_000).map(|_| TenantId::new()).collect();
    let mut i = 0;
    c.bench_function("in-process check, 10,000 tenants", |b| {
        b.iter(|| {
            i = (i + 1) % tenants.len();
            black_box(limiter.check(tenants[i], "api_requests", u32::MAX))
        })
    });
}

fn redis(c: &mut Criterion) {
    let url =
        std::env::var("TENANTD_BENCH_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let limits = RateLimits::redis(&url).expect("redis url");
    let t = TenantId::new();
    rt.block_on(limits.check(t, "api_requests", u32::MAX));
    if limits.fallbacks() > 0 {
        eprintln!("no Redis at {url}: the shared check is not measured");
        return;
    }
    c.bench_function("redis check (Lua GCRA, one round trip)", |b| {
        b.iter(|| black_box(rt.block_on(limits.check(t, "api_requests", u32::MAX))))
    });
    assert_eq!(
        limits.fallbacks(),
        0,
        "Redis stopped answering mid-benchmark"
    );
}

criterion_group!(benches, in_process, redis);
criterion_main!(benches);
