fn main() { #[cfg(feature="tokio")] println!("tokio on"); }
