//! End-to-end tests of the built `kri` binary against the sandbox API (one test binary, modules
//! per area, a shared helper).

mod browser;
mod calibrate;
mod cli;
mod config;
mod ctr;
mod delivery;
mod deploy;
mod faults;
mod first_hour;
mod helper;
mod network;
mod practice;
mod run;
mod secrets;
mod serve;
mod sinks;
mod tap;
mod tenants;
mod workers;
