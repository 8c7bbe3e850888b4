//! The spec parser on bad input: every error names the file and line; nothing panics.

use model::spec::{SpecError, SpecVerdict, parse_spec, run_cli};

fn err(text: &str) -> String {
    parse_spec(text, "bad.spec").expect_err("must not parse").to_string()
}

#[test]
fn bad_input_names_file_and_line() {
    let cases = [
        ("session s1\nstep a { SELECT 1 \n", "bad.spec:2: SQL block opened here is never closed"),
        ("setup { x }\n\nsession s1\n", "bad.spec:3: session \"s1\" has no steps"),
        (
            "session s1\nstep a { x }\npermutation a b\n",
            "bad.spec:3: permutation names undefined step \"b\"",
        ),
        (
            "session s1\nstep a { x }\nsession s2\nstep a { y }\n",
            "bad.spec:4: step \"a\" is defined twice",
        ),
        (
            "session s1\nstep a { x }\nsession s1\nstep b { y }\n",
            "bad.spec:3: session \"s1\" is defined twice",
        ),
        ("# only a comment\n", "bad.spec:1: no sessions"),
        ("session \"s1\nstep a { x }\n", "bad.spec:1: quoted name runs past the end of the line"),
        ("session s1\nstep a { x }\n  % \n", "bad.spec:3: unexpected character '%'"),
        ("session s1\nstep { x }\n", "bad.spec:2: expected a step name, found a SQL block"),
        ("session s1\nstep a x\n", "bad.spec:2: expected '{' SQL block after step a, found 'x'"),
        (
            "session s1\nstep a { x }\npermutation a(b)\n",
            "bad.spec:3: marker names undefined step \"b\"",
        ),
        (
            "session s1\nstep a { x }\npermutation a(*\n",
            "bad.spec:3: expected ',' or ')' in step markers",
        ),
        ("session s1\nstep a { x }\npermutation\n", "bad.spec:3: permutation lists no steps"),
        (
            "session s1\nstep a { x }\nsetup { y }\n",
            "bad.spec:3: unexpected 'setup' (expected 'permutation' or end of file)",
        ),
        (
            "teardown { a }\nteardown { b }\nsession s\nstep a { x }\n",
            "bad.spec:2: expected 'session'",
        ),
    ];
    for (text, want) in cases {
        let got = err(text);
        assert!(got.starts_with(want), "for {text:?}\n  got:  {got}\n  want: {want}…");
    }
}

#[test]
fn too_many_interleavings_is_an_error_not_a_hang() {
    let mut text = String::new();
    for s in 0..4 {
        text.push_str(&format!("session s{s}\n"));
        for k in 0..4 {
            text.push_str(&format!("step s{s}k{k} {{ SELECT 1; }}\n"));
        }
    }
    assert!(err(&text).contains("interleavings; add permutation lines"));
}

#[test]
fn quoted_names_keep_case_and_quotes() {
    let spec =
        parse_spec("session \"Say \"\"hi\"\"\"\nstep \"A b\" { SELECT 1 }\n", "q.spec").unwrap();
    assert_eq!(spec.sessions[0].name, "Say \"hi\"");
    assert_eq!(spec.permutations[0][0].step, "A b");
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap fuzz: every prefix of a real spec, and some garbage.
    let real =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/ssi-classroom.spec"))
            .unwrap();
    for cut in (0..real.len()).filter(|&i| real.is_char_boundary(i)) {
        let _ = parse_spec(&real[..cut], "prefix.spec");
    }
    for junk in
        ["{", "}", "\"", "(", "permutation (", "session a step b {} permutation b(", "\u{0}"]
    {
        let _ = parse_spec(junk, "junk.spec");
    }
}

#[test]
fn cli_exit_codes() {
    let dir = std::env::temp_dir().join(format!("spec_cli_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.spec");
    std::fs::write(&bad, "session s1\nstep a { x\n").unwrap();
    let good = dir.join("good.spec");
    std::fs::write(&good, "session s1\nstep a { SELECT 1; }\n").unwrap();
    let s = |p: &std::path::Path| p.display().to_string();
    let refused = |args: &[String]| matches!(run_cli(args), Err(SpecError::BadInput(_)));
    match run_cli(&[s(&bad)]) {
        Err(SpecError::BadInput(message)) => assert!(message.contains("bad.spec:"), "{message}"),
        other => panic!("unparsable spec: {other:?}"),
    }
    assert!(refused(&[s(&good), "--format".into(), "yaml".into()]), "bad flag");
    assert!(refused(&[s(&good), "--diff".into()]), "--diff needs a URL");
    assert_eq!(run_cli(&[s(&good), "--format".into(), "json".into()]), Ok(SpecVerdict::Passed));
    assert!(refused(&[s(&dir.join("missing.spec"))]), "missing file");
    std::fs::remove_dir_all(&dir).unwrap();
}
