pub mod place;
