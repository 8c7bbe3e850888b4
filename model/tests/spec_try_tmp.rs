#[cfg(feature = "postgres")]
#[test]
fn try_pg() {
    let files: Vec<String> = std::env::var("SPEC_FILES").unwrap().split(',').map(String::from).collect();
    let mut args = files.clone();
    args.push("--database-url".into());
    args.push(std::env::var("DATABASE_URL").unwrap());
    args.push("--format".into());
    args.push(std::env::var("SPEC_FORMAT").unwrap_or("text".into()));
    let code = model::spec::run_cli(&args);
    println!("{code:?}");
}
