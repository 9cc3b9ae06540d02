//! The one integration-test binary: the HTTP contract, end to end, on a fresh database per
//! test and the app on port 0. Areas are modules.

mod helpers;

mod api_keys;
mod audit;
mod auth;
mod durability;
mod errors;
mod events;
mod faults;
mod files;
mod isolation;
mod keys;
mod mobility;
mod mobility_dedicated;
mod mobility_download;
mod mobility_kill;
mod mobility_move;
mod mobility_purge;
mod mobility_resume;
mod nodes;
mod placement;
mod postgres;
mod quotas;
mod ratelimit;
mod resources;
mod run_chaos;
mod runs;
mod tenants;
mod webhook_delivery;
mod webhooks;
