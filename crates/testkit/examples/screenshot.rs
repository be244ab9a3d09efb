//! Renders a page in headless Chromium and saves a PNG: `screenshot URL OUT.png [WIDTH HEIGHT]`.
//! Used for the pictures in the README (the status page, a drill's postmortem timeline).

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(out)) = (args.get(1), args.get(2)) else {
        return Err("usage: screenshot URL OUT.png [WIDTH HEIGHT]".into());
    };
    let width = args.get(3).and_then(|w| w.parse().ok()).unwrap_or(1280);
    let height = args.get(4).and_then(|h| h.parse().ok()).unwrap_or(900);
    let page = rampart_testkit::browser::render(url, width, height, true).await?;
    tokio::fs::write(out, &page.png)
        .await
        .map_err(|e| format!("writing {out}: {e}"))?;
    println!("{out}: {} bytes", page.png.len());
    Ok(())
}
