//! The one integration-test binary: the HTTP contract, end to end, on a fresh database per
//! test and the app on port 0. Areas are modules.

mod helpers;

mod audit;
mod auth;
mod durability;
mod errors;
mod faults;
mod files;
mod isolation;
mod keys;
mod nodes;
mod postgres;
mod quotas;
mod ratelimit;
mod resources;
mod tenants;
