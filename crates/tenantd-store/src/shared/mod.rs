//! The store implementation, written once as macros and expanded per backend: SQL is the
//! same text on SQLite and PostgreSQL (`$n` placeholders, portable statements); what differs
//! (how a transaction starts, how it is bound to a tenant) is in each backend's `Db`.

#[macro_use]
mod catalog;
#[macro_use]
mod cell;
#[macro_use]
mod rows;
