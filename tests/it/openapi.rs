//! `GET /openapi.json`: a valid OpenAPI 3.0 document (checked by
//! `openapi-spec-validator`) that documents every route the server serves.

use std::collections::BTreeSet;

use coupon_ledger::api::routes::ROUTES;
use serde_json::Value;

use crate::common::*;

fn document(addr: std::net::SocketAddr) -> Value {
    let a = get_path(addr, "/openapi.json");
    assert_eq!(a.status, 200, "{}", show(&a));
    assert_eq!(a.header("Content-Type"), Some("application/json"));
    a.json()
}

/// Every method and path template of the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("path item").keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[test]
fn openapi_documents_every_served_route() {
    let s = TestServer::start();
    let doc = document(s.addr);
    assert!(doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.0.")));
    let documented = documented(&doc);
    // The routing table is what the router matches against, so this is
    // every route the server serves.
    let missing: Vec<_> = ROUTES
        .iter()
        .map(|e| (e.method.to_string(), e.template.to_string()))
        .filter(|line| !documented.contains(line))
        .collect();
    assert!(
        missing.is_empty(),
        "served but not in src/api/openapi.json: {missing:?}"
    );
    // Every operation has answers, and every admin one the token.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
            // The page and its assets hold no data and load without a token.
            let page = path == "/admin/" || path.starts_with("/admin/assets/");
            if path.starts_with("/admin/") && !page {
                assert_eq!(
                    op["security"][0]["adminToken"],
                    serde_json::json!([]),
                    "{method} {path}"
                );
            }
        }
    }
}

#[test]
fn openapi_is_served_on_the_admin_listener_too() {
    let admin_port = free_port();
    let s = TestServer::start_with(&format!("admin_listen = \"127.0.0.1:{admin_port}\""));
    let admin: std::net::SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    assert_eq!(document(admin), document(s.addr));
}

#[test]
fn openapi_lists_every_error_code_of_the_protocol_table() {
    let doc: Value = serde_json::from_str(coupon_ledger::api::ops::OPENAPI_JSON).unwrap();
    let enums = |name: &str| -> BTreeSet<i64> {
        doc["components"]["schemas"][name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("no {name} enum"))
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    };
    let mut in_doc = enums("LedgerCode");
    in_doc.extend(enums("HttpLayerCode"));
    // The codes of the tables in docs/protocol.md's "Error codes": a row's
    // first cell (protocol codes) or second cell (HTTP layer) of five digits.
    let protocol = include_str!("../../docs/protocol.md");
    let table = protocol
        .split("## Error codes")
        .nth(1)
        .expect("docs/protocol.md has an Error codes section");
    let mut in_table = BTreeSet::new();
    for line in table.lines().filter(|l| l.starts_with('|')) {
        for cell in line.split('|').map(str::trim).take(3) {
            if cell == "0" || (cell.len() == 5 && cell.bytes().all(|b| b.is_ascii_digit())) {
                in_table.insert(cell.parse::<i64>().unwrap());
            }
        }
    }
    assert!(in_table.len() > 20, "the table was not read: {in_table:?}");
    let missing: Vec<_> = in_table.difference(&in_doc).collect();
    assert!(
        missing.is_empty(),
        "codes of docs/protocol.md missing from the document: {missing:?}"
    );
}

#[test]
fn openapi_passes_the_openapi_spec_validator() {
    let s = TestServer::start();
    let text = get_path(s.addr, "/openapi.json").body;
    let script = r#"
import json, sys
from openapi_spec_validator import validate
validate(json.loads(sys.stdin.read()))
print("valid")
"#;
    let Some((ok, out, err)) = python(
        "openapi_passes_the_openapi_spec_validator",
        &["openapi_spec_validator"],
        script,
        &text,
    ) else {
        return;
    };
    assert!(
        ok && out.trim() == "valid",
        "openapi-spec-validator refused /openapi.json:\n{err}"
    );
}
