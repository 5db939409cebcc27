//! `cargo xtask demo`: fetch data if needed, build the site into www/dist, and serve it on
//! 127.0.0.1 (a tiny static file server, also used by the browser tests).

use crate::shell::step;
use crate::site::build_site;
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};

pub fn run(root: &Path, port: u16, serve: bool) -> Result<()> {
    // build_site fetches and verifies MNIST itself (it writes the digit galleries from it).
    let dist = build_site(root)?;
    if !serve {
        println!("\nSite built in {}", dist.display());
        return Ok(());
    }
    serve_dir(&dist, port)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// Maps a request path to a file inside `dir`, refusing anything that climbs out of it.
fn resolve(dir: &Path, request_path: &str) -> Option<PathBuf> {
    let clean = request_path
        .split(['?', '#'])
        .next()?
        .trim_start_matches('/');
    let relative = Path::new(if clean.is_empty() {
        "index.html"
    } else {
        clean
    });
    if relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        Some(dir.join(relative))
    } else {
        None
    }
}

fn answer(mut stream: TcpStream, dir: &Path) -> std::io::Result<()> {
    let mut request_line = String::new();
    BufReader::new(&stream).read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let file = resolve(dir, path)
        .filter(|_| method == "GET")
        .and_then(|p| std::fs::read(&p).ok().map(|b| (p, b)));
    match file {
        Some((path, body)) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
                content_type(&path),
                body.len()
            )?;
            stream.write_all(&body)
        }
        None => stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
        ),
    }
}

fn accept_loop(listener: TcpListener, dir: PathBuf) -> std::io::Result<()> {
    for stream in listener.incoming() {
        let stream = stream?;
        let dir = dir.clone();
        std::thread::spawn(move || {
            let _ = answer(stream, &dir);
        });
    }
    Ok(())
}

/// Serves `dir` on 127.0.0.1:`port` until interrupted.
pub fn serve_dir(dir: &Path, port: u16) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).with_context(|| {
        format!("cannot listen on 127.0.0.1:{port}: is it in use? pass --port N")
    })?;
    step(&format!(
        "Serving {} at http://127.0.0.1:{port}/ (Ctrl-C stops)",
        dir.display()
    ));
    accept_loop(listener, dir.to_path_buf())?;
    Ok(())
}

/// Serves `dir` on a free port of 127.0.0.1 from a background thread (for tests); returns
/// the port. The server lives as long as the process.
pub fn serve_in_background(dir: &Path) -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("cannot listen on 127.0.0.1")?;
    let port = listener.local_addr()?.port();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || accept_loop(listener, dir));
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_stays_inside_the_site() {
        let dir = Path::new("/site");
        assert_eq!(resolve(dir, "/"), Some(PathBuf::from("/site/index.html")));
        assert_eq!(
            resolve(dir, "/pkg/a.js?v=1"),
            Some(PathBuf::from("/site/pkg/a.js"))
        );
        assert_eq!(resolve(dir, "/../etc/passwd"), None);
        assert_eq!(resolve(dir, "/pkg/../../x"), None);
        assert_eq!(content_type(Path::new("x.wasm")), "application/wasm");
    }
}
