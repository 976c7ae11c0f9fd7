pub mod attach;
pub mod create;
pub mod revoke;
pub mod show;
