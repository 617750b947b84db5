//! The Packer templates, read with an HCL parser: what packer would reject (undeclared
//! variables or locals, uploads of files that do not exist, scripts that are not there), what a
//! user relies on (required_plugins, labels that carry the build data, the manifest) and the
//! variables' validation rules, evaluated against their defaults and against bad values.

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::expr::{Expression, Operation, TraversalOperator};
use hcl::template::{Directive, Element, Template};
use hcl::{Block, Body, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn packer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packer")
}

fn load(name: &str) -> (String, Body) {
    let path = packer_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let body = hcl::parse(&text).unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
    (text, body)
}

fn blocks<'a>(body: &'a Body, ident: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
    body.blocks().filter(move |b| b.identifier() == ident)
}

fn label(b: &Block, i: usize) -> String {
    b.labels()[i].as_str().to_string()
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

fn string(e: &Expression) -> String {
    match e {
        Expression::String(s) => s.clone(),
        Expression::TemplateExpr(t) => t.to_string(),
        other => panic!("expected a string, got {other:?}"),
    }
}

/// Every `<root>.<name>` traversal (`var.x`, `local.y`) in an expression, templates included.
fn refs(e: &Expression, root: &str, out: &mut BTreeSet<String>) {
    match e {
        Expression::Traversal(t) => {
            if let Expression::Variable(v) = &t.expr
                && v.as_str() == root
                && let Some(TraversalOperator::GetAttr(name)) = t.operators.first()
            {
                out.insert(name.as_str().to_string());
            }
            refs(&t.expr, root, out);
            for op in &t.operators {
                if let TraversalOperator::Index(i) = op {
                    refs(i, root, out);
                }
            }
        }
        Expression::Array(items) => items.iter().for_each(|i| refs(i, root, out)),
        Expression::Object(o) => {
            for (k, v) in o {
                if let hcl::expr::ObjectKey::Expression(k) = k {
                    refs(k, root, out);
                }
                refs(v, root, out);
            }
        }
        Expression::TemplateExpr(t) => {
            let tpl = Template::from_expr(t).expect("template parses");
            template_refs(&tpl, root, out);
        }
        Expression::FuncCall(f) => f.args.iter().for_each(|a| refs(a, root, out)),
        Expression::Parenthesis(p) => refs(p, root, out),
        Expression::Conditional(c) => {
            refs(&c.cond_expr, root, out);
            refs(&c.true_expr, root, out);
            refs(&c.false_expr, root, out);
        }
        Expression::Operation(op) => match op.as_ref() {
            Operation::Unary(u) => refs(&u.expr, root, out),
            Operation::Binary(b) => {
                refs(&b.lhs_expr, root, out);
                refs(&b.rhs_expr, root, out);
            }
        },
        Expression::ForExpr(f) => {
            refs(&f.collection_expr, root, out);
            refs(&f.value_expr, root, out);
            if let Some(k) = &f.key_expr {
                refs(k, root, out);
            }
            if let Some(c) = &f.cond_expr {
                refs(c, root, out);
            }
        }
        _ => {}
    }
}

fn template_refs(t: &Template, root: &str, out: &mut BTreeSet<String>) {
    for el in t.elements() {
        match el {
            Element::Literal(_) => {}
            Element::Interpolation(i) => refs(&i.expr, root, out),
            Element::Directive(d) => match d.as_ref() {
                Directive::If(i) => {
                    refs(&i.cond_expr, root, out);
                    template_refs(&i.true_template, root, out);
                    if let Some(f) = &i.false_template {
                        template_refs(f, root, out);
                    }
                }
                Directive::For(f) => {
                    refs(&f.collection_expr, root, out);
                    template_refs(&f.template, root, out);
                }
            },
        }
    }
}

fn body_refs(body: &Body, root: &str, out: &mut BTreeSet<String>) {
    for a in body.attributes() {
        refs(a.expr(), root, out);
    }
    for b in body.blocks() {
        body_refs(b.body(), root, out);
    }
}

fn declared_variables(body: &Body) -> BTreeSet<String> {
    blocks(body, "variable").map(|b| label(b, 0)).collect()
}

fn declared_locals(body: &Body) -> BTreeSet<String> {
    blocks(body, "locals")
        .flat_map(|b| b.body().attributes().map(|a| a.key().to_string()))
        .collect()
}

const TEMPLATES: &[&str] = &["archlinux.pkr.hcl", "nixos.pkr.hcl", "debian.pkr.hcl"];

#[test]
fn required_plugins_pin_the_hcloud_plugin_and_a_packer_that_loads_it() {
    for name in TEMPLATES {
        let (_, body) = load(name);
        let packer = blocks(&body, "packer")
            .next()
            .unwrap_or_else(|| panic!("{name}: no packer block"));
        assert_eq!(
            string(attr(packer.body(), "required_version").unwrap()),
            ">= 1.11.0",
            "{name}"
        );
        let rp = blocks(packer.body(), "required_plugins")
            .next()
            .expect("required_plugins");
        let Some(Expression::Object(hcloud)) = attr(rp.body(), "hcloud") else {
            panic!("{name}: required_plugins has no hcloud object")
        };
        let get = |k: &str| {
            hcloud
                .iter()
                .find(|(key, _)| key.to_string() == k)
                .map(|(_, v)| string(v))
                .unwrap_or_else(|| panic!("{name}: hcloud.{k} missing"))
        };
        assert_eq!(get("source"), "github.com/hetznercloud/hcloud");
        assert_eq!(get("version"), "~> 1.7");
    }
}

#[test]
fn every_referenced_variable_and_local_is_declared_and_every_variable_is_used() {
    for name in TEMPLATES {
        let (_, body) = load(name);
        let declared = declared_variables(&body);
        let mut used = BTreeSet::new();
        body_refs(&body, "var", &mut used);
        let undeclared: Vec<_> = used.difference(&declared).collect();
        assert!(
            undeclared.is_empty(),
            "{name}: undeclared variables {undeclared:?}"
        );
        let unused: Vec<_> = declared.difference(&used).collect();
        assert!(
            unused.is_empty(),
            "{name}: declared but unused variables {unused:?}"
        );

        let locals = declared_locals(&body);
        let mut used_locals = BTreeSet::new();
        body_refs(&body, "local", &mut used_locals);
        let undeclared: Vec<_> = used_locals.difference(&locals).collect();
        assert!(
            undeclared.is_empty(),
            "{name}: undeclared locals {undeclared:?}"
        );
    }
}

#[test]
fn every_variable_is_described_and_every_validation_explains_itself() {
    for name in TEMPLATES {
        let (_, body) = load(name);
        for v in blocks(&body, "variable") {
            let vname = label(v, 0);
            let d = attr(v.body(), "description")
                .unwrap_or_else(|| panic!("{name}: {vname} has no description"));
            assert!(
                string(d).len() > 10,
                "{name}: {vname}: description too short"
            );
            for val in blocks(v.body(), "validation") {
                let msg = string(attr(val.body(), "error_message").expect("error_message"));
                assert!(
                    msg.starts_with(char::is_uppercase) && msg.ends_with('.'),
                    "{name}: {vname}: packer wants a sentence as error_message, got {msg:?}"
                );
            }
        }
        let token = blocks(&body, "variable")
            .find(|v| label(v, 0) == "hcloud-token")
            .expect("hcloud-token");
        assert_eq!(
            attr(token.body(), "sensitive"),
            Some(&Expression::Bool(true)),
            "{name}"
        );
        let default = format!("{:?}", attr(token.body(), "default").unwrap());
        assert!(
            default.contains("HCLOUD_TOKEN"),
            "{name}: token default {default}"
        );
    }
}

/// Interpolations that packer resolves, as they resolve for the checks below.
fn resolve(path: &str, flavor: &str) -> PathBuf {
    let root = packer_dir();
    let p = path
        .replace("${path.root}", root.to_str().unwrap())
        .replace(
            "${local.nix-config-path}",
            root.join("nixos/default-config").to_str().unwrap(),
        );
    assert!(
        !p.contains("${"),
        "{flavor}: unexpected interpolation in upload source {path}"
    );
    PathBuf::from(p)
}

#[test]
fn every_uploaded_file_exists_and_every_script_run_was_uploaded() {
    for name in TEMPLATES {
        let (_, body) = load(name);
        let build = blocks(&body, "build").next().expect("build block");
        let mut uploaded_dirs = BTreeMap::new();
        let mut dist_uploaded = false;
        for p in blocks(build.body(), "provisioner").filter(|p| label(p, 0) == "file") {
            let source = string(attr(p.body(), "source").expect("source"));
            let dest = string(attr(p.body(), "destination").expect("destination"));
            assert!(
                dest.starts_with("/root/hcloud/"),
                "{name}: upload to {dest}"
            );
            if source.starts_with("${local.dist-dir}") {
                // The staged tree is uploaded whole, as the root of an installed tree.
                assert_eq!(source, "${local.dist-dir}/", "{name}");
                assert_eq!(dest, "/root/hcloud/dist/", "{name}");
                dist_uploaded = true;
                continue;
            }
            let local = resolve(&source, name);
            assert!(
                local.exists(),
                "{name}: upload source {} does not exist",
                local.display()
            );
            if source.ends_with('/') {
                assert!(local.is_dir(), "{name}: {source} is not a directory");
                assert!(
                    dest.ends_with('/'),
                    "{name}: directory upload {source} to non-directory {dest}"
                );
                uploaded_dirs.insert(dest, local);
            }
        }
        assert!(
            dist_uploaded,
            "{name}: the staged agents tree is not uploaded"
        );

        // Every `bash /root/hcloud/scripts/X.sh` the shell provisioners run exists in an uploaded
        // directory, and the directories they need were created before the uploads.
        let shells: Vec<&Block> = blocks(build.body(), "provisioner")
            .filter(|p| label(p, 0) == "shell")
            .collect();
        let first_inline = format!("{:?}", attr(shells[0].body(), "inline").unwrap());
        for dest in uploaded_dirs.keys() {
            assert!(
                first_inline.contains(dest.trim_end_matches('/')),
                "{name}: {dest} is not created before the upload: {first_inline}"
            );
        }
        let mut ran = 0;
        for s in &shells {
            let Some(Expression::Array(lines)) = attr(s.body(), "inline") else {
                continue;
            };
            for l in lines {
                let line = string(l);
                for word in line
                    .split_whitespace()
                    .filter(|w| w.starts_with("/root/hcloud/"))
                {
                    if word.ends_with(".sh") {
                        let (dir, file) = word.rsplit_once('/').unwrap();
                        let local = uploaded_dirs.get(&format!("{dir}/")).unwrap_or_else(|| {
                            panic!("{name}: {word} is in no uploaded directory")
                        });
                        assert!(
                            local.join(file).is_file(),
                            "{name}: {word} does not exist in {}",
                            local.display()
                        );
                        ran += 1;
                    }
                }
            }
        }
        assert!(ran >= 3, "{name}: only {ran} scripts run");
    }
}

#[test]
fn the_staged_tree_is_read_at_the_path_dist_writes_its_manifest_to() {
    for name in TEMPLATES {
        let (text, _) = load(name);
        let want = format!("${{local.dist-dir}}/{}", hcloud_image::dist::MANIFEST_PATH);
        assert!(text.contains(&want), "{name} does not read {want}");
    }
}

#[test]
fn snapshots_carry_the_build_data_as_labels_and_in_the_manifest() {
    for name in TEMPLATES {
        let (_, body) = load(name);
        let locals = blocks(&body, "locals").next().expect("locals");
        let Some(Expression::Object(labels)) = attr(locals.body(), "labels") else {
            panic!("{name}: local.labels is not an object")
        };
        let keys: BTreeSet<String> = labels.iter().map(|(k, _)| k.to_string()).collect();
        for k in [
            "os-flavor",
            "arch",
            "distro-release",
            "build-id",
            "build-time",
            "agents-version",
        ] {
            assert!(keys.contains(k), "{name}: label {k} missing from {keys:?}");
        }
        let source = blocks(&body, "source").next().expect("source");
        assert_eq!(label(source, 0), "hcloud");
        let sb = source.body();
        let mut snapshot_labels = BTreeSet::new();
        refs(
            attr(sb, "snapshot_labels").unwrap(),
            "local",
            &mut snapshot_labels,
        );
        assert_eq!(
            snapshot_labels,
            BTreeSet::from(["labels".to_string()]),
            "{name}"
        );
        assert_eq!(string(attr(sb, "rescue").unwrap()), "linux64", "{name}");
        assert_eq!(string(attr(sb, "ssh_username").unwrap()), "root", "{name}");
        for k in [
            "token",
            "location",
            "server_type",
            "image",
            "snapshot_name",
            "upgrade_server_type",
        ] {
            assert!(attr(sb, k).is_some(), "{name}: source has no {k}");
        }
        let build = blocks(&body, "build").next().unwrap();
        let pp = blocks(build.body(), "post-processor")
            .find(|p| label(p, 0) == "manifest")
            .unwrap_or_else(|| panic!("{name}: no manifest post-processor"));
        assert_eq!(
            string(attr(pp.body(), "output").unwrap()),
            "packer-manifest.json"
        );
        let custom = format!("{:?}", attr(pp.body(), "custom_data").unwrap());
        assert!(
            custom.contains("labels") && custom.contains("snapshot-name"),
            "{name}: {custom}"
        );
    }
}

// --- validation rules, evaluated like packer does --------------------------------------------

fn f_can(args: FuncArgs) -> Result<Value, String> {
    Ok(Value::Bool(!args[0].is_null()))
}
/// `regex` that yields null instead of failing on no match, so `can(regex(..))` works without
/// lazy evaluation.
fn f_regex(args: FuncArgs) -> Result<Value, String> {
    let re = regex::Regex::new(args[0].as_str().unwrap()).map_err(|e| e.to_string())?;
    Ok(match re.find(args[1].as_str().unwrap()) {
        Some(m) => Value::String(m.as_str().to_string()),
        None => Value::Null,
    })
}
fn f_alltrue(args: FuncArgs) -> Result<Value, String> {
    Ok(Value::Bool(
        args[0]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.as_bool() == Some(true)),
    ))
}
fn f_contains(args: FuncArgs) -> Result<Value, String> {
    Ok(Value::Bool(args[0].as_array().unwrap().contains(&args[1])))
}
fn f_lookup(args: FuncArgs) -> Result<Value, String> {
    Ok(args[0]
        .as_object()
        .unwrap()
        .get(args[1].as_str().unwrap())
        .cloned()
        .unwrap_or_else(|| args[2].clone()))
}
fn f_length(args: FuncArgs) -> Result<Value, String> {
    let n = match &args[0] {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        other => return Err(format!("length of {other:?}")),
    };
    Ok(Value::from(n as u64))
}
fn f_floor(args: FuncArgs) -> Result<Value, String> {
    let n = args[0].as_f64().unwrap();
    Ok(Value::from(n.floor() as i64))
}
fn f_env(_: FuncArgs) -> Result<Value, String> {
    Ok(Value::String(String::new()))
}

fn context<'a>(var_name: &str, value: Value) -> Context<'a> {
    let mut ctx = Context::new();
    let mut vars = hcl::Map::new();
    vars.insert(var_name.to_string(), value);
    ctx.declare_var("var", Value::Object(vars));
    ctx.declare_func("can", FuncDef::builder().param(ParamType::Any).build(f_can));
    ctx.declare_func(
        "regex",
        FuncDef::builder()
            .params([ParamType::String, ParamType::String])
            .build(f_regex),
    );
    ctx.declare_func(
        "alltrue",
        FuncDef::builder().param(ParamType::Any).build(f_alltrue),
    );
    ctx.declare_func(
        "contains",
        FuncDef::builder()
            .params([ParamType::Any, ParamType::Any])
            .build(f_contains),
    );
    ctx.declare_func(
        "lookup",
        FuncDef::builder()
            .params([ParamType::Any, ParamType::String, ParamType::Any])
            .build(f_lookup),
    );
    ctx.declare_func(
        "length",
        FuncDef::builder().param(ParamType::Any).build(f_length),
    );
    ctx.declare_func(
        "floor",
        FuncDef::builder().param(ParamType::Number).build(f_floor),
    );
    ctx.declare_func(
        "env",
        FuncDef::builder().param(ParamType::String).build(f_env),
    );
    ctx
}

/// Does `value` pass every validation rule of variable `var` in template `name`?
fn valid(name: &str, var: &str, value: Value) -> bool {
    let (_, body) = load(name);
    let v = blocks(&body, "variable")
        .find(|b| label(b, 0) == var)
        .unwrap_or_else(|| panic!("{name}: no variable {var}"));
    let ctx = context(var, value);
    blocks(v.body(), "validation").all(|val| {
        let cond = attr(val.body(), "condition").unwrap();
        match cond.evaluate(&ctx) {
            Ok(Value::Bool(b)) => b,
            other => panic!("{name}: {var}: condition evaluated to {other:?}"),
        }
    })
}

fn default_of(name: &str, var: &str) -> Value {
    let (_, body) = load(name);
    let v = blocks(&body, "variable")
        .find(|b| label(b, 0) == var)
        .unwrap();
    attr(v.body(), "default")
        .unwrap()
        .evaluate(&context(var, Value::Null))
        .unwrap()
}

#[test]
fn every_default_passes_its_validation_except_the_unset_token() {
    for name in TEMPLATES {
        let (_, body) = load(name);
        for v in blocks(&body, "variable") {
            let var = label(v, 0);
            let d = default_of(name, &var);
            if var == "hcloud-token" {
                assert!(
                    !valid(name, &var, d),
                    "{name}: an empty token must be rejected"
                );
                assert!(valid(name, &var, Value::from("dummy")), "{name}");
            } else {
                assert!(
                    valid(name, &var, d.clone()),
                    "{name}: default {d:?} of {var} fails its validation"
                );
            }
        }
    }
}

#[test]
fn validation_rejects_what_would_fail_late_in_a_build() {
    let a = "archlinux.pkr.hcl";
    let n = "nixos.pkr.hcl";
    let s = Value::from;
    assert!(valid(a, "arch-image", s("2026.11.01")));
    assert!(!valid(a, "arch-image", s("2026-11-01")));
    assert!(!valid(
        a,
        "arch-image",
        s("archlinux-bootstrap-x86_64.tar.gz")
    ));
    assert!(
        !valid(a, "server-type", s("cax11")),
        "Arch Linux is x86_64 only"
    );
    assert!(valid(a, "server-type", s("cpx12")));
    assert!(valid(a, "server-type", s("ccx13")));
    assert!(valid(n, "server-type", s("cax11")));
    assert!(!valid(n, "server-type", s("CX23")));
    assert!(!valid(a, "disk", s("/dev/sda; rm -rf /")));
    assert!(valid(a, "locale", s("de_DE.UTF-8")));
    assert!(!valid(a, "locale", s("de_DE UTF-8")));
    assert!(valid(a, "timezone", s("Europe/Berlin")));
    assert!(!valid(a, "timezone", s("../../etc/passwd")));
    assert!(!valid(
        a,
        "extra-packages",
        Value::Array(vec![s("vim"), s("evil; reboot")])
    ));
    let mirrors = |m: &[&str]| Value::Array(m.iter().map(|x| Value::from(x.to_string())).collect());
    assert!(valid(
        a,
        "arch-package-mirrors",
        mirrors(&["http://10.0.0.1/arch/$repo/os/$arch"])
    ));
    assert!(!valid(a, "arch-package-mirrors", mirrors(&[])));
    assert!(!valid(
        a,
        "arch-package-mirrors",
        mirrors(&["https://mirror.example/archlinux/core/os/x86_64"])
    ));
    assert!(!valid(
        a,
        "arch-package-mirrors",
        mirrors(&["https://a/$repo/os/$arch https://b/$repo/os/$arch"])
    ));
    assert!(!valid(a, "swap-size-mib", Value::from(1.5)));
    assert!(!valid(a, "swap-size-mib", Value::from(-1)));
    assert!(valid(n, "arch", s("aarch64")));
    assert!(!valid(n, "arch", s("arm64")));
    assert!(valid(n, "nixos-channel", s("nixos-unstable")));
    assert!(!valid(n, "nixos-channel", s("26.05")));
    let mut sums = hcl::Map::new();
    sums.insert("x86_64".to_string(), s("ab"));
    assert!(!valid(n, "nix-sha256", Value::Object(sums)));
    assert!(valid(
        n,
        "extra-packages",
        Value::Array(vec![s("python3Packages.requests")])
    ));
}

#[test]
fn the_nixos_template_builds_for_both_architectures_from_one_file() {
    let (text, _) = load("nixos.pkr.hcl");
    assert!(text.contains(r#"var.arch == "aarch64" ? "cax11" : "cx23""#));
    assert!(text.contains("target/dist/${var.arch}"));
    assert!(text.contains("var.nix-sha256[var.arch]"));
    // The module and the unit files it reads are uploaded from the repository.
    assert!(
        packer_dir().join("../nix/module.nix").is_file(),
        "nix/module.nix is missing"
    );
    assert!(text.contains(r#"source      = "${path.root}/../nix/""#));
}

#[test]
fn debian_validation_rejects_what_would_fail_late_in_a_build() {
    let d = "debian.pkr.hcl";
    let s = Value::from;
    assert!(valid(d, "arch", s("aarch64")));
    assert!(!valid(d, "arch", s("arm64")));
    assert!(valid(d, "server-type", s("cax11")));
    assert!(!valid(d, "server-type", s("CX23")));
    assert!(valid(d, "debian-release", s("forky")));
    assert!(!valid(d, "debian-release", s("13")));
    assert!(!valid(d, "debian-release", s("trixie; reboot")));
    assert!(valid(d, "debian-mirror", s("http://10.0.2.2:8080/debian")));
    assert!(!valid(d, "debian-mirror", s("ftp.debian.org")));
    assert!(!valid(
        d,
        "debian-mirror",
        s("http://a/debian http://b/debian")
    ));
    assert!(valid(d, "debian-apt-mirror", s("")));
    assert!(valid(
        d,
        "debian-apt-mirror",
        s("https://mirror.hetzner.com/debian/packages")
    ));
    assert!(!valid(d, "debian-apt-mirror", s("mirror.hetzner.com")));
    assert!(valid(d, "debian-security-mirror", s("")));
    assert!(!valid(
        d,
        "debian-security-mirror",
        s("security.debian.org")
    ));
    assert!(valid(
        d,
        "extra-packages",
        Value::Array(vec![s("vim"), s("python3-requests"), s("g++")])
    ));
    assert!(!valid(
        d,
        "extra-packages",
        Value::Array(vec![s("vim"), s("evil,reboot")])
    ));
    assert!(!valid(d, "extra-packages", Value::Array(vec![s("Vim")])));
    assert!(!valid(d, "swap-size-mib", Value::from(-1)));
}

#[test]
fn the_debian_template_builds_for_both_architectures_from_one_file() {
    let (text, _) = load("debian.pkr.hcl");
    assert!(text.contains(r#"var.arch == "aarch64" ? "cax11" : "cx23""#));
    assert!(text.contains("target/dist/${var.arch}"));
    // The arch/server-type refusals of the NixOS template, with substr (packer 1.6.6).
    assert!(text.contains(r#"substr(local.server-type, 0, 3) == "cax""#));
    assert!(text.contains(r#"substr(var.upgrade-server-type, 0, 3) == "cax""#));
    assert!(text.contains(r#""ROOT_LABEL=debian""#));
    assert!(text.contains(r#""ARCH=${var.arch}""#));
    assert!(text.contains(r#""os-flavor"      = "debian""#));
    assert!(
        !debian_packages().iter().any(|p| p.starts_with("cloud-")),
        "the Debian image has the agents instead of cloud-init"
    );
}

/// packer/files/debian/packages.txt as debian.sh and the offline mirror recipe read it: one
/// package per line, `#` to the end of a line a comment.
fn debian_packages() -> Vec<String> {
    let path = packer_dir().join("files/debian/packages.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let name = regex::Regex::new("^[a-z0-9][a-z0-9+.-]+$").unwrap();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            [p] => {
                assert!(name.is_match(p), "packages.txt line {}: {p:?}", n + 1);
                out.push(p.to_string());
            }
            _ => panic!(
                "packages.txt line {}: one package per line: {line:?}",
                n + 1
            ),
        }
    }
    out
}

#[test]
fn the_debian_package_list_has_what_the_image_needs_and_what_debian_sh_maps_for_arm64() {
    let packages = debian_packages();
    let unique: BTreeSet<_> = packages.iter().collect();
    assert_eq!(
        unique.len(),
        packages.len(),
        "packages.txt lists a package twice"
    );
    for p in [
        "systemd-sysv",
        "udev",
        "dbus",
        "systemd-resolved",
        "systemd-timesyncd",
        "systemd-repart",
        "openssh-server",
        "iproute2",
        "linux-image-cloud-amd64",
        "initramfs-tools",
        "grub2-common",
        "grub-pc-bin",
        "grub-efi-amd64-bin",
        "zstd",
        "ca-certificates",
        "kmod",
        "procps",
        "e2fsprogs",
        "dosfstools",
        "debian-archive-keyring",
        "qemu-guest-agent",
    ] {
        assert!(packages.iter().any(|x| x == p), "packages.txt lacks {p}");
    }
    // The x86_64 names debian.sh replaces on aarch64 are in the list, and the script maps them.
    let script = std::fs::read_to_string(packer_dir().join("scripts/debian.sh")).unwrap();
    for (amd64, arm64) in [
        ("linux-image-cloud-amd64", "p=linux-image-cloud-arm64"),
        ("grub-efi-amd64-bin", "p=grub-efi-arm64-bin"),
        ("grub-pc-bin", "continue"),
    ] {
        assert!(packages.iter().any(|x| x == amd64), "{amd64}");
        assert!(
            script.contains(&format!("{amd64}) {arm64} ;;")),
            "debian.sh does not map {amd64} for aarch64"
        );
    }
}

#[test]
fn the_debian_image_hands_systemd_imds_jobs_to_the_agents_and_has_a_serial_console() {
    let script = packer_dir().join("scripts/debian.sh");
    let text = std::fs::read_to_string(&script).unwrap();
    let cmdline = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("cmdline=\""))
        .unwrap_or_else(|| panic!("{} sets no cmdline", script.display()));
    let cmdline = cmdline.split('"').next().unwrap_or_default();
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    for arg in IMDS_HAND_OVER
        .iter()
        .copied()
        .chain(["console=tty0", "console=$console,115200"])
    {
        assert!(
            words.contains(&arg),
            "the Debian kernel command line {cmdline:?} lacks {arg}"
        );
    }
    assert!(text.contains("x86_64) deb_arch=amd64 console=ttyS0 ;;"));
    assert!(text.contains(r#"GRUB_TERMINAL="serial console""#));
}

/// The kernel command line switches with which an image hands systemd-imds' jobs to the agents
/// (the simulator's s7 boots them on systemd 262).
const IMDS_HAND_OVER: &[&str] = &["systemd.imds.import=0", "systemd.imds.network=off"];

#[test]
fn the_arch_image_hands_systemd_imds_jobs_to_the_agents() {
    let script = packer_dir().join("scripts/archlinux-configure.sh");
    let text = std::fs::read_to_string(&script).unwrap();
    let cmdline = text
        .lines()
        .find_map(|l| l.split("GRUB_CMDLINE_LINUX_DEFAULT=\"").nth(1))
        .unwrap_or_else(|| panic!("{} sets no GRUB_CMDLINE_LINUX_DEFAULT", script.display()));
    let cmdline = cmdline.split('"').next().unwrap_or_default();
    for arg in IMDS_HAND_OVER {
        assert!(
            cmdline.split_whitespace().any(|a| a == *arg),
            "the Arch kernel command line {cmdline:?} lacks {arg}"
        );
    }
}

fn f_replace(args: FuncArgs) -> Result<Value, String> {
    let s = |i: usize| args[i].as_str().unwrap_or_default().to_string();
    Ok(Value::String(s(0).replace(&s(1), &s(2))))
}

/// The build server's name as packer sends it, for `arch` and a fixed build time.
fn server_name(template: &str, arch: &str) -> String {
    let (_, body) = load(template);
    let source = blocks(&body, "source").next().expect("a source block");
    let mut ctx = context("arch", Value::String(arch.into()));
    let mut locals = hcl::Map::new();
    locals.insert(
        "build-time".to_string(),
        Value::String("20261201T120000Z".into()),
    );
    ctx.declare_var("local", Value::Object(locals));
    ctx.declare_func(
        "replace",
        FuncDef::builder()
            .params([ParamType::String, ParamType::String, ParamType::String])
            .build(f_replace),
    );
    match attr(source.body(), "server_name")
        .expect("server_name")
        .evaluate(&ctx)
    {
        Ok(Value::String(s)) => s,
        other => panic!("{template}: server_name evaluated to {other:?}"),
    }
}

/// Hetzner refuses a server name that is not a hostname ("Name must be a valid hostname"); the
/// NixOS template's x86_64 build server was `packer-nixos-x86_64-...`, refused before anything
/// was built. Checked with the rule the fake Cloud API enforces.
#[test]
fn build_servers_have_names_hetzner_accepts_for_every_architecture() {
    for (template, arches) in [
        ("archlinux.pkr.hcl", &["x86_64"][..]),
        ("nixos.pkr.hcl", &["x86_64", "aarch64"][..]),
        ("debian.pkr.hcl", &["x86_64", "aarch64"][..]),
    ] {
        for arch in arches {
            let name = server_name(template, arch);
            assert!(
                hcloud_fake_cloud::rules::valid_hostname(&name),
                "{template} ({arch}): Hetzner refuses the server name {name:?}"
            );
        }
    }
}

/// `hcloud-image cleanup --build-id` selects on `packer-build-id`: the build server and the
/// temporary SSH key both carry it, so a failed build's leftovers can be found by label. (Both
/// options are the plugin's; the offline packer 1.6.6 check drops them.)
#[test]
fn the_build_server_and_its_key_carry_the_build_id_label() {
    for name in TEMPLATES {
        let (_, body) = load(name);
        let source = blocks(&body, "source").next().expect("source");
        for option in ["server_labels", "ssh_keys_labels"] {
            let Some(Expression::Object(labels)) = attr(source.body(), option) else {
                panic!("{name}: the source has no {option} object")
            };
            let (_, value) = labels
                .iter()
                .find(|(k, _)| k.to_string() == "packer-build-id")
                .unwrap_or_else(|| panic!("{name}: {option} has no packer-build-id"));
            let mut locals = BTreeSet::new();
            refs(value, "local", &mut locals);
            assert_eq!(
                locals,
                BTreeSet::from(["build-id".to_string()]),
                "{name}: {option}"
            );
        }
    }
}
