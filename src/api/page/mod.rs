//! The operator's web page at `/admin/`: one HTML file, one script and one
//! style sheet, compiled into the binary. No build step and nothing loaded
//! from elsewhere, so it works on a box with no internet.
//!
//! The files hold no data and are served without a token. The page asks the
//! operator for the admin token, keeps it in `sessionStorage`, and sends it as
//! `Authorization: Bearer` on every call to the admin API.

use super::routes::PageAsset;
use crate::http::Response;

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("admin.js");
const STYLE: &str = include_str!("admin.css");

/// Only the page's own files and calls; no inline script, no frames.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data: blob:; connect-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Answers one of the page's files.
pub fn serve(asset: PageAsset) -> Response {
    super::access::code(0);
    let (content_type, body) = match asset {
        PageAsset::Index => ("text/html; charset=utf-8", INDEX),
        PageAsset::Script => ("text/javascript; charset=utf-8", SCRIPT),
        PageAsset::Style => ("text/css; charset=utf-8", STYLE),
    };
    Response::new(200, content_type, body.as_bytes().to_vec())
        .with_header("Content-Security-Policy", CSP)
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Referrer-Policy", "no-referrer")
        .with_header("Cache-Control", "no-cache")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for text in [INDEX, SCRIPT, STYLE] {
            // The SVG namespace is a name, not an address the page loads.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            for outside in ["http://", "https://", "//cdn", "@import", "<script>"] {
                assert!(!text.contains(outside), "the page refers to {outside}");
            }
        }
        assert!(INDEX.contains("/admin/assets/admin.js"));
        assert!(INDEX.contains("/admin/assets/admin.css"));
    }
}
