//! Plain text out of knowledge documents (Markdown, HTML, plain text, PDF)
//! and the split of that text into chunks for retrieval.
//!
//! Pure functions, no I/O: the engine's document operations call
//! [`extract`] on the uploaded bytes, store [`Extracted::text`], and store
//! the [`chunk`]s (which are embedded and searched with the FAQ).
//!
//! Chunks do not overlap. Each chunk carries its heading path ("Guide ›
//! Returns › Refunds"), which gives it the context an overlap would, and a
//! cut falls at a paragraph, else a sentence, else a word boundary, so a
//! chunk reads on its own; overlapping text would only show up twice in
//! search results and citations.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use tidechat_domain::DocumentFormat;

/// A part of a document under its heading path.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub headings: Vec<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    /// The document's own title if it has one (first `# H1` in Markdown,
    /// `<title>` or first `<h1>` in HTML, PDF Title metadata).
    pub title: Option<String>,
    /// The whole plain text (what is stored and returned as the document's text).
    pub text: String,
    pub sections: Vec<Section>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("the document is not UTF-8 text (save it as UTF-8)")]
    NotUtf8,
    #[error("cannot read the PDF: {0}")]
    Pdf(String),
    #[error("the document contains no text")]
    Empty,
}

/// One chunk of a document, ready to be stored and embedded.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkText {
    /// "Title › H1 › H2" (title first; then the section's headings)
    pub heading: String,
    pub content: String,
}

/// Separator of a heading path.
const PATH_SEPARATOR: &str = " › ";
/// Below this a requested chunk size makes no sense (a chunk of a few
/// letters carries no meaning), so smaller targets are raised to it.
const MIN_TARGET_CHARS: usize = 32;
/// Heading text is a label, not content: longer "headings" (a whole
/// paragraph marked up as `<h2>`) are cut for the path.
const HEADING_MAX_CHARS: usize = 200;
/// Bound on decompressed content per PDF page, far above any real text page,
/// so a small compressed stream cannot blow up memory.
const PDF_PAGE_MAX_DECOMPRESSED: usize = 32 * 1024 * 1024;
/// Bound on decompressed streams of the whole PDF on load.
const PDF_MAX_DECOMPRESSED: usize = 256 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Format detection

/// Format from a file name / Content-Type (`text/markdown`, `.md`,
/// `.markdown`, `text/html`, `.htm[l]`, `text/plain`, `.txt`,
/// `application/pdf`, `.pdf`); PDF also by the `%PDF-` magic.
///
/// Precedence: the PDF magic (bytes do not lie), then the file extension
/// (browsers and `curl` often send `text/plain` or
/// `application/octet-stream` for `.md` files), then the Content-Type, then
/// an HTML doctype/`<html>` sniff. `None` when nothing tells.
pub fn guess_format(
    file_name: Option<&str>,
    content_type: Option<&str>,
    bytes: &[u8],
) -> Option<DocumentFormat> {
    let head = &bytes[..bytes.len().min(1024)];
    // Readers may accept junk before the header, but a text that merely
    // mentions "%PDF-" must not turn into a PDF: only a leading header
    // (after whitespace) counts.
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    if head[start..].starts_with(b"%PDF-") {
        return Some(DocumentFormat::Pdf);
    }
    if let Some(format) = file_name.and_then(format_from_name) {
        return Some(format);
    }
    if let Some(format) = content_type.and_then(format_from_content_type) {
        return Some(format);
    }
    sniff_html(head).then_some(DocumentFormat::Html)
}

fn format_from_name(name: &str) -> Option<DocumentFormat> {
    let name = name.trim();
    let (_, ext) = name.rsplit_once('.')?;
    match ext.to_ascii_lowercase().as_str() {
        "md" | "markdown" | "mdown" | "mkd" => Some(DocumentFormat::Markdown),
        "html" | "htm" | "xhtml" => Some(DocumentFormat::Html),
        "txt" | "text" => Some(DocumentFormat::Text),
        "pdf" => Some(DocumentFormat::Pdf),
        _ => None,
    }
}

fn format_from_content_type(content_type: &str) -> Option<DocumentFormat> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "text/markdown" | "text/x-markdown" => Some(DocumentFormat::Markdown),
        "text/html" | "application/xhtml+xml" => Some(DocumentFormat::Html),
        "text/plain" => Some(DocumentFormat::Text),
        "application/pdf" | "application/x-pdf" => Some(DocumentFormat::Pdf),
        _ => None,
    }
}

fn sniff_html(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let start = text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .get(..15)
        .unwrap_or_default()
        .to_ascii_lowercase();
    start.starts_with("<!doctype html") || start.starts_with("<html")
}

// ---------------------------------------------------------------------------
// Extraction

/// Extracts the plain text, the title and the sections of a document.
///
/// Never panics on any input; text formats must be UTF-8 (a BOM is fine).
/// NULs and other control characters except `\n` and `\t` are removed.
pub fn extract(format: DocumentFormat, bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let extracted = match format {
        DocumentFormat::Markdown => extract_markdown(&decode_utf8(bytes)?),
        DocumentFormat::Html => extract_html(&decode_utf8(bytes)?),
        DocumentFormat::Text => extract_text(&decode_utf8(bytes)?),
        DocumentFormat::Pdf => extract_pdf(bytes)?,
    };
    if extracted.text.trim().is_empty() {
        return Err(match format {
            DocumentFormat::Pdf => ExtractError::Pdf(
                "no text layer (a scanned document needs OCR before upload)".to_owned(),
            ),
            _ => ExtractError::Empty,
        });
    }
    Ok(extracted)
}

fn decode_utf8(bytes: &[u8]) -> Result<String, ExtractError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| ExtractError::NotUtf8)?;
    Ok(clean(text))
}

/// Line endings to `\n`; control characters (NUL and the like) and stray
/// byte-order marks removed, `\n` and `\t` kept.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\n' | '\t' => out.push(c),
            '\u{feff}' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Collects text into sections while a parser walks a document.
#[derive(Default)]
struct Builder {
    title: Option<String>,
    /// The open headings: (level, text).
    headings: Vec<(u8, String)>,
    /// Text of the current section.
    current: String,
    sections: Vec<Section>,
    /// The whole text, headings included.
    text: String,
}

impl Builder {
    fn push(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.current.push_str(s);
        self.text.push_str(s);
    }

    /// Inline text: whitespace runs become one space, and no space at the
    /// start of a line.
    fn push_inline(&mut self, s: &str) {
        let mut out = String::with_capacity(s.len());
        let mut space =
            self.current.ends_with(|c: char| c.is_whitespace()) || self.current.is_empty();
        for c in s.chars() {
            if c.is_whitespace() {
                if !space {
                    out.push(' ');
                    space = true;
                }
            } else {
                out.push(c);
                space = false;
            }
        }
        self.push(&out);
    }

    fn newline(&mut self) {
        if self.current.is_empty() || self.current.ends_with('\n') {
            return;
        }
        trim_end_spaces(&mut self.current);
        trim_end_spaces(&mut self.text);
        self.current.push('\n');
        self.text.push('\n');
    }

    fn paragraph(&mut self) {
        trim_end_spaces(&mut self.current);
        trim_end_spaces(&mut self.text);
        for buf in [&mut self.current, &mut self.text] {
            if buf.is_empty() || buf.ends_with("\n\n") {
                continue;
            }
            buf.push_str(if buf.ends_with('\n') { "\n" } else { "\n\n" });
        }
    }

    /// A heading of `level` (1–6) closes the current section and opens one
    /// under the new path.
    fn heading(&mut self, level: u8, raw: &str) {
        let text = heading_label(raw);
        if text.is_empty() {
            return;
        }
        if level == 1 && self.title.is_none() {
            self.title = Some(text.clone());
        }
        self.close_section();
        while self.headings.last().is_some_and(|(l, _)| *l >= level) {
            self.headings.pop();
        }
        self.headings.push((level, text.clone()));
        trim_end_spaces(&mut self.text);
        if !self.text.is_empty() {
            while !self.text.ends_with("\n\n") {
                self.text.push('\n');
            }
        }
        self.text.push_str(&text);
        self.text.push_str("\n\n");
    }

    fn close_section(&mut self) {
        let text = std::mem::take(&mut self.current);
        let text = text.trim();
        if !text.is_empty() {
            self.sections.push(Section {
                headings: self.headings.iter().map(|(_, h)| h.clone()).collect(),
                text: text.to_owned(),
            });
        }
    }

    fn finish(mut self) -> Extracted {
        self.close_section();
        let text = self.text.trim().to_owned();
        if self.sections.is_empty() && !text.is_empty() {
            // Only headings: they are the content.
            self.sections.push(Section {
                headings: Vec::new(),
                text: text.clone(),
            });
        }
        Extracted {
            title: self.title,
            text,
            sections: self.sections,
        }
    }
}

fn trim_end_spaces(s: &mut String) {
    let len = s.trim_end_matches([' ', '\t']).len();
    s.truncate(len);
}

fn heading_label(raw: &str) -> String {
    let label = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    match label.char_indices().nth(HEADING_MAX_CHARS) {
        Some((at, _)) => format!("{}…", &label[..at]),
        None => label,
    }
}

fn extract_text(text: &str) -> Extracted {
    let text = text.trim().to_owned();
    let sections = if text.is_empty() {
        Vec::new()
    } else {
        vec![Section {
            headings: Vec::new(),
            text: text.clone(),
        }]
    };
    Extracted {
        title: None,
        text,
        sections,
    }
}

// --- Markdown

fn extract_markdown(source: &str) -> Extracted {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS
        | Options::ENABLE_HEADING_ATTRIBUTES;
    let mut b = Builder::default();
    // Heading text is collected here while a heading is open.
    let mut heading: Option<(u8, String)> = None;
    // Ordered-list counters (None for bullet lists), innermost last.
    let mut lists: Vec<Option<u64>> = Vec::new();
    let mut in_code = false;
    let mut html_block: Option<String> = None;
    let mut first_cell = true;
    // Front matter (YAML `---` or TOML `+++`): not text, but its `title`
    // names a document that has no `# H1`.
    let mut metadata: Option<String> = None;
    let mut front_title: Option<String> = None;

    for event in Parser::new_ext(source, options) {
        if let Some(meta) = metadata.as_mut() {
            match event {
                Event::End(TagEnd::MetadataBlock(_)) => {
                    front_title = front_title.or_else(|| front_matter_title(meta));
                    metadata = None;
                }
                Event::Text(t) => meta.push_str(&t),
                _ => {}
            }
            continue;
        }
        if let Some((_, text)) = heading.as_mut() {
            match event {
                Event::End(TagEnd::Heading(_)) => {
                    if let Some((level, text)) = heading.take() {
                        b.heading(level, &text);
                    }
                }
                Event::Text(t) | Event::Code(t) => text.push_str(&t),
                Event::SoftBreak | Event::HardBreak => text.push(' '),
                Event::Html(t) | Event::InlineHtml(t) => text.push_str(&strip_tags(&t)),
                _ => {}
            }
            continue;
        }
        if let Some(html) = html_block.as_mut() {
            match event {
                Event::End(TagEnd::HtmlBlock) => {
                    let html = html_block.take().unwrap_or_default();
                    b.paragraph();
                    b.push_inline(&strip_tags(&html));
                    b.paragraph();
                }
                Event::Html(t) | Event::Text(t) => html.push_str(&t),
                _ => {}
            }
            continue;
        }
        match event {
            Event::Start(tag) => match tag {
                Tag::Heading { level, .. } => {
                    heading = Some((heading_number(level), String::new()))
                }
                // A loose list item's paragraph stays on the item's line.
                Tag::Paragraph
                | Tag::BlockQuote(_)
                | Tag::Table(_)
                | Tag::FootnoteDefinition(_)
                    if !b.current.ends_with("- ") && !ends_with_number_marker(&b.current) =>
                {
                    b.paragraph();
                }
                Tag::MetadataBlock(_) => metadata = Some(String::new()),
                Tag::CodeBlock(_) => {
                    b.paragraph();
                    in_code = true;
                }
                Tag::HtmlBlock => html_block = Some(String::new()),
                Tag::List(start) => {
                    if lists.is_empty() {
                        b.paragraph();
                    } else {
                        b.newline();
                    }
                    lists.push(start);
                }
                Tag::Item => {
                    b.newline();
                    let depth = lists.len().saturating_sub(1);
                    b.push(&"  ".repeat(depth.min(8)));
                    match lists.last_mut() {
                        Some(Some(n)) => {
                            b.push(&format!("{n}. "));
                            *n = n.saturating_add(1);
                        }
                        _ => b.push("- "),
                    }
                }
                Tag::TableHead | Tag::TableRow => {
                    b.newline();
                    first_cell = true;
                }
                Tag::TableCell => {
                    if !first_cell {
                        b.push(" | ");
                    }
                    first_cell = false;
                }
                _ => {}
            },
            Event::End(tag) => match tag {
                TagEnd::Paragraph
                | TagEnd::BlockQuote(_)
                | TagEnd::Table
                | TagEnd::FootnoteDefinition => b.paragraph(),
                TagEnd::CodeBlock => {
                    in_code = false;
                    b.paragraph();
                }
                TagEnd::List(_) => {
                    lists.pop();
                    if lists.is_empty() {
                        b.paragraph();
                    }
                }
                TagEnd::Item | TagEnd::TableHead | TagEnd::TableRow => b.newline(),
                _ => {}
            },
            Event::Text(t) => {
                if in_code {
                    // Code fences verbatim.
                    b.push(&t);
                } else {
                    b.push_inline(&t);
                }
            }
            Event::Code(t) => b.push_inline(&t),
            Event::InlineMath(t) | Event::DisplayMath(t) => b.push_inline(&t),
            // Inline tags (`<span>`, `<br>`) are dropped; the text between them comes as Text.
            Event::Html(t) => b.push_inline(&strip_tags(&t)),
            Event::InlineHtml(_) => {}
            Event::FootnoteReference(name) => b.push_inline(&format!("[{name}]")),
            Event::SoftBreak => b.push_inline(" "),
            Event::HardBreak => b.newline(),
            Event::Rule => b.paragraph(),
            Event::TaskListMarker(done) => b.push(if done { "[x] " } else { "[ ] " }),
        }
    }
    if let Some((level, text)) = heading.take() {
        b.heading(level, &text);
    }
    let mut extracted = b.finish();
    if extracted.title.is_none() {
        extracted.title = front_title;
    }
    extracted
}

fn front_matter_title(meta: &str) -> Option<String> {
    meta.lines().find_map(|line| {
        let (key, value) = line.split_once(':').or_else(|| line.split_once('='))?;
        if !key.trim().eq_ignore_ascii_case("title") {
            return None;
        }
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        let title = heading_label(value);
        (!title.is_empty()).then_some(title)
    })
}

fn ends_with_number_marker(s: &str) -> bool {
    s.strip_suffix(". ")
        .map(|rest| rest.ends_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(false)
}

fn heading_number(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// Text of an HTML fragment (an HTML block inside Markdown): tags, scripts,
/// styles and comments removed, entities decoded.
fn strip_tags(html: &str) -> String {
    extract_html(html).text
}

// --- HTML

/// Elements whose content is never document text.
const DROPPED: &[&str] = &[
    "script", "style", "nav", "noscript", "template", "svg", "iframe", "object", "canvas",
    "button", "select",
];
/// Elements that break paragraphs.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "aside",
    "blockquote",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "figure",
    "figcaption",
    "form",
    "fieldset",
    "address",
    "details",
    "summary",
    "hr",
    "body",
    "html",
    "caption",
    "center",
    // Only inside article/main/section; a page-level header or footer is dropped.
    "header",
    "footer",
];

fn extract_html(source: &str) -> Extracted {
    // Raw-text elements and comments go before parsing: `tl` does not treat
    // `<script>` content as raw text, so `if (a < b)` in a script would
    // otherwise open a bogus tag and swallow the page.
    let source = strip_raw_elements(source);
    let dom = match tl::parse(&source, tl::ParserOptions::default()) {
        Ok(dom) => dom,
        // tl only refuses inputs over 4 GiB; the text minus tags is the best left.
        Err(_) => return extract_text(&source),
    };
    let parser = dom.parser();
    let mut b = Builder::default();
    let mut html_title: Option<String> = None;

    enum Step {
        Enter(tl::NodeHandle),
        Exit(Exit),
    }
    enum Exit {
        Block,
        Line,
        Pre,
        Heading(u8),
        /// Leaving an article/main/section.
        Content,
    }
    let mut content_depth = 0usize;
    // (depth of <pre>, open heading text)
    let mut pre_depth = 0usize;
    let mut heading: Option<(u8, String)> = None;
    let mut first_cell = true;

    // An explicit stack: deeply nested markup must not overflow the call stack.
    let mut stack: Vec<Step> = dom
        .children()
        .iter()
        .rev()
        .map(|h| Step::Enter(*h))
        .collect();
    while let Some(step) = stack.pop() {
        let handle = match step {
            Step::Enter(handle) => handle,
            Step::Exit(exit) => {
                match exit {
                    Exit::Block => {
                        if heading.is_none() {
                            b.paragraph();
                        }
                    }
                    Exit::Content => {
                        content_depth = content_depth.saturating_sub(1);
                        if heading.is_none() {
                            b.paragraph();
                        }
                    }
                    Exit::Line => {
                        if heading.is_none() {
                            b.newline();
                        }
                    }
                    Exit::Pre => {
                        pre_depth = pre_depth.saturating_sub(1);
                        b.paragraph();
                    }
                    Exit::Heading(level) => {
                        if let Some((_, text)) = heading.take() {
                            b.heading(level, &text);
                        }
                    }
                }
                continue;
            }
        };
        let Some(node) = handle.get(parser) else {
            continue;
        };
        match node {
            tl::Node::Comment(_) => {}
            tl::Node::Raw(raw) => {
                let raw = raw.as_utf8_str();
                let text = html_escape::decode_html_entities(raw.as_ref());
                let text = clean(&text);
                if let Some((_, h)) = heading.as_mut() {
                    h.push_str(&text);
                } else if pre_depth > 0 {
                    b.push(&text);
                } else {
                    b.push_inline(&text);
                }
            }
            tl::Node::Tag(tag) => {
                let name = tag.name().as_utf8_str().to_ascii_lowercase();
                let name = name.as_str();
                if name == "title" {
                    if html_title.is_none() {
                        let text =
                            html_escape::decode_html_entities(&tag.inner_text(parser)).into_owned();
                        let text = heading_label(&clean(&text));
                        if !text.is_empty() {
                            html_title = Some(text);
                        }
                    }
                    continue;
                }
                let attr = |key: &str| {
                    tag.attributes()
                        .get(key)
                        .map(|v| v.map(|v| v.as_utf8_str().to_ascii_lowercase()))
                };
                let hidden = attr("hidden").is_some()
                    || attr("aria-hidden") == Some(Some("true".to_owned()))
                    || attr("role") == Some(Some("navigation".to_owned()));
                // A page's own header/footer is chrome (logo, menu, legal
                // links); an article's header holds its title.
                let chrome = matches!(name, "header" | "footer") && content_depth == 0;
                if DROPPED.contains(&name) || hidden || chrome {
                    continue;
                }
                let mut children: Vec<tl::NodeHandle> =
                    tag.children().top().iter().copied().collect();
                children.reverse();
                match name {
                    "h1" | "h2" | "h3" | "h4" | "h5" | "h6" if heading.is_none() => {
                        let level = name.as_bytes()[1] - b'0';
                        heading = Some((level, String::new()));
                        stack.push(Step::Exit(Exit::Heading(level)));
                    }
                    "br" => {
                        if let Some((_, h)) = heading.as_mut() {
                            h.push(' ');
                        } else {
                            b.newline();
                        }
                        continue;
                    }
                    "img" => {
                        if let Some(Some(alt)) = tag.attributes().get("alt") {
                            let alt = html_escape::decode_html_entities(alt.as_utf8_str().as_ref())
                                .into_owned();
                            let alt = clean(&alt);
                            match heading.as_mut() {
                                Some((_, h)) => h.push_str(&alt),
                                None => {
                                    b.push_inline(" ");
                                    b.push_inline(&alt);
                                    b.push_inline(" ");
                                }
                            }
                        }
                        continue;
                    }
                    "pre" => {
                        b.paragraph();
                        pre_depth += 1;
                        stack.push(Step::Exit(Exit::Pre));
                    }
                    "li" => {
                        b.newline();
                        b.push("- ");
                        stack.push(Step::Exit(Exit::Line));
                    }
                    "tr" => {
                        b.newline();
                        first_cell = true;
                        stack.push(Step::Exit(Exit::Line));
                    }
                    "td" | "th" => {
                        if !first_cell {
                            b.push(" | ");
                        }
                        first_cell = false;
                    }
                    "article" | "main" | "section" => {
                        if heading.is_none() {
                            b.paragraph();
                        }
                        content_depth += 1;
                        stack.push(Step::Exit(Exit::Content));
                    }
                    _ if BLOCKS.contains(&name) => {
                        if heading.is_none() {
                            b.paragraph();
                        }
                        stack.push(Step::Exit(Exit::Block));
                    }
                    _ => {}
                }
                stack.extend(children.into_iter().map(Step::Enter));
            }
        }
    }
    if let Some((level, text)) = heading.take() {
        b.heading(level, &text);
    }
    let mut extracted = b.finish();
    if html_title.is_some() {
        extracted.title = html_title;
    }
    extracted
}

/// Removes comments and the elements whose content is raw text
/// (`<script>`, `<style>`, …) from HTML source, ASCII-case-insensitively.
fn strip_raw_elements(source: &str) -> String {
    const RAW: &[&str] = &["script", "style", "noscript", "template", "textarea", "xmp"];
    let bytes = source.as_bytes();
    let lower = source.to_ascii_lowercase();
    let lower = lower.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let mut copied = 0;
    while let Some(offset) = memchr_lt(&bytes[i..]) {
        let at = i + offset;
        let rest = &lower[at..];
        let end = if rest.starts_with(b"<!--") {
            Some(find(lower, at + 4, b"-->").map_or(bytes.len(), |e| e + 3))
        } else {
            RAW.iter().find_map(|name| {
                let open = rest.get(1..1 + name.len())? == name.as_bytes()
                    && rest
                        .get(1 + name.len())
                        .is_none_or(|c| c.is_ascii_whitespace() || *c == b'>' || *c == b'/');
                if !open {
                    return None;
                }
                let close = format!("</{name}");
                Some(
                    find(lower, at + 1, close.as_bytes()).map_or(bytes.len(), |e| {
                        find(lower, e, b">").map_or(bytes.len(), |g| g + 1)
                    }),
                )
            })
        };
        match end {
            Some(end) => {
                // `at` and `end` sit on ASCII bytes, so both are char boundaries.
                out.push_str(&source[copied..at]);
                out.push(' ');
                copied = end;
                i = end;
            }
            None => i = at + 1,
        }
        if i >= bytes.len() {
            break;
        }
    }
    out.push_str(source.get(copied..).unwrap_or_default());
    out
}

fn memchr_lt(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'<')
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

// --- PDF

fn extract_pdf(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    // lopdf is a large parser of untrusted input; a panic inside it must
    // become an error for this one upload, not take the request down.
    match catch_unwind(AssertUnwindSafe(|| extract_pdf_inner(bytes))) {
        Ok(result) => result,
        Err(_) => Err(ExtractError::Pdf(
            "it is malformed (the parser gave up)".to_owned(),
        )),
    }
}

fn extract_pdf_inner(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let options = lopdf::LoadOptions {
        max_decompressed_size: Some(PDF_MAX_DECOMPRESSED),
        ..lopdf::LoadOptions::default()
    };
    let doc = lopdf::Document::load_mem_with_options(bytes, options).map_err(|e| match e {
        lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword => {
            ExtractError::Pdf("it is encrypted with a password".to_owned())
        }
        e => ExtractError::Pdf(format!("it is malformed ({e})")),
    })?;
    if doc.is_encrypted() {
        return Err(ExtractError::Pdf(
            "it is encrypted with a password".to_owned(),
        ));
    }
    let title = pdf_title(&doc);
    let mut text = String::new();
    let mut failed = 0usize;
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    for page in &pages {
        match doc.extract_text_with_limit(&[*page], PDF_PAGE_MAX_DECOMPRESSED) {
            Ok(page_text) => {
                let page_text = join_pdf_lines(&unligature(&clean(&page_text)));
                if !page_text.is_empty() {
                    if !text.is_empty() {
                        text.push_str("\n\n");
                    }
                    text.push_str(&page_text);
                }
            }
            Err(_) => failed += 1,
        }
    }
    if text.trim().is_empty() {
        let why = if pages.is_empty() {
            "it has no pages".to_owned()
        } else if failed > 0 {
            format!(
                "no text could be read from its pages ({failed} of {} unreadable)",
                pages.len()
            )
        } else {
            "no text layer (a scanned document needs OCR before upload)".to_owned()
        };
        return Err(ExtractError::Pdf(why));
    }
    let mut extracted = extract_text(&text);
    extracted.title = title;
    Ok(extracted)
}

fn pdf_title(doc: &lopdf::Document) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let info = match info {
        lopdf::Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        lopdf::Object::Dictionary(dict) => dict,
        _ => return None,
    };
    let title = lopdf::decode_text_string(info.get(b"Title").ok()?).ok()?;
    let title = heading_label(&clean(&title));
    (!title.is_empty()).then_some(title)
}

/// PDF text comes as visual lines: lines of a paragraph are joined (a word
/// hyphenated at a line end is rejoined), blank lines stay paragraph breaks.
fn join_pdf_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push_str("\n\n");
            }
            continue;
        }
        if !out.is_empty() && !out.ends_with('\n') {
            let hyphenated = out.ends_with('-')
                && out[..out.len() - 1].ends_with(|c: char| c.is_alphabetic())
                && line.starts_with(|c: char| c.is_lowercase());
            if hyphenated {
                out.pop();
            } else {
                out.push(' ');
            }
        }
        out.push_str(&collapse_leaders(line));
    }
    out.trim().to_owned()
}

/// Typographic ligatures as PDF fonts emit them ("speci\u{fb01}cation")
/// split back into letters, so the words match a search.
fn unligature(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{fb00}' => out.push_str("ff"),
            '\u{fb01}' => out.push_str("fi"),
            '\u{fb02}' => out.push_str("fl"),
            '\u{fb03}' => out.push_str("ffi"),
            '\u{fb04}' => out.push_str("ffl"),
            '\u{fb05}' | '\u{fb06}' => out.push_str("st"),
            c => out.push(c),
        }
    }
    out
}

/// Table-of-contents leaders (". . . . ." or ": : : :" between a title and
/// its page number) become one " … ", so they neither fill chunks nor
/// glue entries into one endless sentence.
fn collapse_leaders(line: &str) -> String {
    const LEADERS: [char; 5] = ['.', ':', '·', '_', '…'];
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if LEADERS.contains(&c) {
            // Count leader units: the character, optionally one space after it.
            let mut j = i;
            let mut units = 0;
            while j < chars.len() && chars[j] == c {
                units += 1;
                j += 1;
                if j + 1 < chars.len() && chars[j] == ' ' && chars[j + 1] == c {
                    j += 1;
                }
            }
            if units >= 4 {
                trim_end_spaces(&mut out);
                out.push_str(" … ");
                while j < chars.len() && chars[j] == ' ' {
                    j += 1;
                }
                i = j;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------
// Chunking

/// Splits into chunks of about `target_chars` characters (default the lead
/// uses: 800), never crossing a section boundary, cutting at paragraph, then
/// sentence (Unicode-aware: . ! ? 。 ！ ？ and Korean/German punctuation),
/// then word boundaries; no empty chunks; whitespace normalised; a tiny
/// trailing piece is merged into the previous chunk of the same section.
///
/// A chunk holds at most `target_chars` characters, except that a trailing
/// piece under a quarter of the target is merged into the chunk before it
/// (so at most 1.25 × target). Targets under 32 are raised to 32.
pub fn chunk(title: &str, extracted: &Extracted, target_chars: usize) -> Vec<ChunkText> {
    let target = target_chars.max(MIN_TARGET_CHARS);
    let mut chunks = Vec::new();
    for section in &extracted.sections {
        let heading = heading_path(title, &section.headings);
        for content in chunk_section(&section.text, target) {
            chunks.push(ChunkText {
                heading: heading.clone(),
                content,
            });
        }
    }
    chunks
}

fn heading_path(title: &str, headings: &[String]) -> String {
    let title = title.trim();
    let mut parts: Vec<&str> = Vec::with_capacity(headings.len() + 1);
    if !title.is_empty() {
        parts.push(title);
    }
    for (i, h) in headings.iter().enumerate() {
        let h = h.trim();
        // A document titled by its own H1 would read "Guide › Guide › …".
        if h.is_empty() || (i == 0 && h.to_lowercase() == title.to_lowercase()) {
            continue;
        }
        parts.push(h);
    }
    parts.join(PATH_SEPARATOR)
}

/// A piece to pack: its text, its length in chars, and whether it starts a
/// paragraph (joined with a blank line) or continues one (joined with a space).
struct Unit {
    text: String,
    chars: usize,
    new_paragraph: bool,
}

fn chunk_section(text: &str, target: usize) -> Vec<String> {
    let mut units: Vec<Unit> = Vec::new();
    for paragraph in paragraphs(text) {
        let chars = paragraph.chars().count();
        if chars <= target {
            units.push(Unit {
                text: paragraph,
                chars,
                new_paragraph: true,
            });
            continue;
        }
        let mut first = true;
        for sentence in sentences(&paragraph) {
            let chars = sentence.chars().count();
            if chars <= target {
                units.push(Unit {
                    text: sentence.to_owned(),
                    chars,
                    new_paragraph: first,
                });
            } else {
                for (text, chars) in split_words(sentence, target) {
                    units.push(Unit {
                        text,
                        chars,
                        new_paragraph: first,
                    });
                    first = false;
                }
            }
            first = false;
        }
    }

    // Greedy packing; `starts` remembers whether each chunk began a paragraph.
    let mut chunks: Vec<(String, usize, bool)> = Vec::new();
    let mut current = String::new();
    let mut current_chars = 0usize;
    let mut current_new_para = true;
    for unit in units {
        let joiner = if unit.new_paragraph { 2 } else { 1 };
        if !current.is_empty() && current_chars + joiner + unit.chars > target {
            chunks.push((
                std::mem::take(&mut current),
                current_chars,
                current_new_para,
            ));
            current_chars = 0;
        }
        if current.is_empty() {
            current_new_para = unit.new_paragraph;
            current = unit.text;
            current_chars = unit.chars;
        } else {
            current.push_str(if unit.new_paragraph { "\n\n" } else { " " });
            current.push_str(&unit.text);
            current_chars += joiner + unit.chars;
        }
    }
    if !current.is_empty() {
        let tiny = current_chars < target / 4;
        match chunks.last_mut() {
            Some((last, last_chars, _)) if tiny => {
                last.push_str(if current_new_para { "\n\n" } else { " " });
                last.push_str(&current);
                *last_chars += current_chars + 1;
            }
            _ => chunks.push((current, current_chars, current_new_para)),
        }
    }
    // A chunk that opens inside indented code or a nested list starts
    // with the indentation, which means nothing on its own.
    chunks
        .into_iter()
        .map(|(text, _, _)| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .collect()
}

/// Paragraphs (split at blank lines) with whitespace normalised: lines
/// trimmed at the end, inner runs of spaces collapsed, leading indentation
/// kept (code and nested lists stay readable), blank lines dropped.
fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if !current.is_empty() {
            current.push('\n');
        }
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        // Indentation as spaces only (tabs and NBSP in it would look random).
        let indent_width = indent
            .chars()
            .map(|c| if c == '\t' { 4 } else { 1 })
            .sum::<usize>();
        current.extend(std::iter::repeat_n(' ', indent_width.min(16)));
        let mut space = false;
        for c in body.trim_end().chars() {
            if c.is_whitespace() {
                if !space {
                    current.push(' ');
                    space = true;
                }
            } else {
                current.push(c);
                space = false;
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Common abbreviations (EN/DE) after which a period does not end a sentence.
/// ("etc." is not one: it ends sentences more often than not, and a
/// lower-case next word already keeps "etc. and" together.)
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "st", "vs", "e.g", "i.e", "approx", "bzw", "usw", "vgl",
    "evtl", "ggf", "inkl", "zzgl", "z.b", "d.h", "u.a", "bspw", "sog", "jh", "jan", "feb", "apr",
    "jun", "jul", "aug", "sep", "sept", "okt", "oct", "nov", "dez", "dec",
];
/// Abbreviations only before a number ("No. 5", "ca. 20 €"); elsewhere
/// these words can end a sentence ("The answer is no. Then …").
const ABBREVIATIONS_BEFORE_NUMBER: &[&str] = &[
    "no", "nr", "ca", "tel", "abs", "art", "max", "min", "vol", "pp", "mio", "mrd", "str",
];

/// Sentences of a paragraph, each trimmed, never empty.
///
/// A sentence ends at `.`, `!`, `?`, `…` (and runs of them, plus closing
/// quotes/brackets) followed by whitespace, or at the full-width `。！？`
/// even without a space (CJK text has none). A period does not end a
/// sentence after a single Latin letter ("z. B.", initials), a 1–2 digit
/// number (German ordinals: "am 1. Januar"), a known abbreviation, or when
/// the next word starts in lower case. Korean uses the same marks as
/// English ("…했습니다. 다음"), so it needs no rule of its own.
fn sentences(paragraph: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = paragraph.char_indices().collect();
    let mut out = Vec::new();
    let mut start = 0usize; // byte offset
    let mut i = 0usize;
    while i < chars.len() {
        let (_, c) = chars[i];
        let full_width = matches!(c, '。' | '！' | '？' | '｡');
        if !(full_width || matches!(c, '.' | '!' | '?' | '…' | '‽')) {
            i += 1;
            continue;
        }
        // Consume the run of terminators and closing marks.
        let mut j = i + 1;
        while j < chars.len()
            && matches!(
                chars[j].1,
                '.' | '!'
                    | '?'
                    | '…'
                    | '。'
                    | '！'
                    | '？'
                    | '"'
                    | '\''
                    | '”'
                    | '’'
                    | '»'
                    | '«'
                    | '“'
                    | ')'
                    | ']'
                    | '」'
                    | '』'
                    | '）'
            )
        {
            j += 1;
        }
        let at_end = j >= chars.len();
        let followed_by_space = at_end || chars[j].1.is_whitespace();
        let mut boundary = full_width || followed_by_space;
        if boundary && !full_width && c == '.' && j == i + 1 && !at_end {
            boundary = !period_is_abbreviation(paragraph, &chars, start, i, j);
        }
        if boundary {
            let end = if at_end { paragraph.len() } else { chars[j].0 };
            let sentence = paragraph[start..end].trim();
            if !sentence.is_empty() {
                out.push(sentence);
            }
            start = end;
        }
        i = j;
    }
    let rest = paragraph[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

fn period_is_abbreviation(
    paragraph: &str,
    chars: &[(usize, char)],
    sentence_start: usize,
    dot: usize,
    after: usize,
) -> bool {
    // The next word: lower case means the sentence goes on.
    let next = chars[after..]
        .iter()
        .map(|(_, c)| *c)
        .find(|c| !c.is_whitespace());
    if next.is_some_and(char::is_lowercase) {
        return true;
    }
    // The word before the period.
    let dot_byte = chars[dot].0;
    let before = &paragraph[sentence_start..dot_byte];
    let word = before
        .rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"' || c == '„')
        .next()
        .unwrap_or_default();
    let mut letters = word.chars();
    match (letters.next(), letters.next()) {
        (None, _) => return false,
        (Some(c), None) if c.is_alphabetic() && (c as u32) < 0x250 => return true,
        _ => {}
    }
    if word.len() <= 2 && word.chars().all(|c| c.is_ascii_digit()) {
        return true;
    }
    let lower = word.to_lowercase();
    ABBREVIATIONS.contains(&lower.as_str())
        || (next.is_some_and(|c| c.is_ascii_digit())
            && ABBREVIATIONS_BEFORE_NUMBER.contains(&lower.as_str()))
}

/// Splits an over-long sentence at spaces into pieces of at most `target`
/// chars; a single word longer than that (a URL, a base64 blob, CJK text
/// without spaces) is cut at char boundaries.
fn split_words(sentence: &str, target: usize) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut current_chars = 0usize;
    for word in sentence.split_whitespace() {
        let chars = word.chars().count();
        if chars > target {
            if !current.is_empty() {
                out.push((std::mem::take(&mut current), current_chars));
            }
            let mut piece = String::new();
            let mut piece_chars = 0usize;
            for c in word.chars() {
                if piece_chars == target {
                    out.push((std::mem::take(&mut piece), piece_chars));
                    piece_chars = 0;
                }
                piece.push(c);
                piece_chars += 1;
            }
            current = piece;
            current_chars = piece_chars;
            continue;
        }
        if !current.is_empty() && current_chars + 1 + chars > target {
            out.push((std::mem::take(&mut current), current_chars));
            current_chars = 0;
        }
        if !current.is_empty() {
            current.push(' ');
            current_chars += 1;
        }
        current.push_str(word);
        current_chars += chars;
    }
    if !current.is_empty() {
        out.push((current, current_chars));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn md(s: &str) -> Extracted {
        extract(DocumentFormat::Markdown, s.as_bytes()).unwrap()
    }

    fn html(s: &str) -> Extracted {
        extract(DocumentFormat::Html, s.as_bytes()).unwrap()
    }

    /// A tiny deterministic generator, so the random-input tests repeat.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn assert_chunks_sane(chunks: &[ChunkText], target: usize) {
        for c in chunks {
            let n = c.content.chars().count();
            assert!(!c.content.trim().is_empty(), "empty chunk");
            assert_eq!(c.content, c.content.trim(), "untrimmed chunk");
            assert!(
                n <= target + target / 4 + 2,
                "chunk of {n} chars over target {target}"
            );
            assert!(!c.content.contains("\n\n\n"));
            assert!(
                !c.content.contains("  ") || c.content.contains("\n "),
                "{:?}",
                c.content
            );
        }
    }

    #[test]
    fn markdown_headings_become_section_paths_and_title() {
        let doc = md("# Guide\n\nIntro text.\n\n## Returns\n\nSend it back.\n\n### Refunds\n\nMoney back in 5 days.\n\n## Shipping\n\nWe ship worldwide.\n");
        assert_eq!(doc.title.as_deref(), Some("Guide"));
        let paths: Vec<Vec<&str>> = doc
            .sections
            .iter()
            .map(|s| s.headings.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            paths,
            vec![
                vec!["Guide"],
                vec!["Guide", "Returns"],
                vec!["Guide", "Returns", "Refunds"],
                vec!["Guide", "Shipping"],
            ]
        );
        assert_eq!(doc.sections[2].text, "Money back in 5 days.");
        assert!(doc
            .text
            .starts_with("Guide\n\nIntro text.\n\nReturns\n\nSend it back."));
        // The title is not repeated in the chunk heading.
        let chunks = chunk("Guide", &doc, 800);
        assert_eq!(chunks[2].heading, "Guide › Returns › Refunds");
        assert_eq!(chunks[0].heading, "Guide");
        let chunks = chunk("Handbook", &doc, 800);
        assert_eq!(chunks[1].heading, "Handbook › Guide › Returns");
    }

    #[test]
    fn markdown_keeps_lists_tables_code_links_and_alt_text() {
        let doc = md(
            "Intro with a [link text](https://example.invalid/x) and ![a red bike](bike.png).\n\n\
- first\n- second\n  1. nested one\n  2. nested two\n\n\
| Plan | Price |\n|------|-------|\n| Basic | 5 € |\n\n\
```rust\nfn main() {\n    println!(\"hi\");\n}\n```\n\n\
<div class=\"note\"><b>Note:</b> keep &amp; hold</div>\n\n\
Some <span>inline</span> html.\n",
        );
        let text = &doc.sections[0].text;
        assert!(
            text.contains("Intro with a link text and a red bike."),
            "{text}"
        );
        assert!(!text.contains("example.invalid"));
        assert!(
            text.contains("- first\n- second\n  1. nested one\n  2. nested two"),
            "{text}"
        );
        assert!(text.contains("Plan | Price\nBasic | 5 €"), "{text}");
        assert!(
            text.contains("fn main() {\n    println!(\"hi\");\n}"),
            "{text}"
        );
        assert!(text.contains("Note: keep & hold"), "{text}");
        assert!(!text.contains("<div") && !text.contains("<span"), "{text}");
        assert!(text.contains("Some inline html."), "{text}");
        assert_eq!(doc.title, None);
        // Front matter is not text; its title names a document without an H1.
        let doc = md("---\ntitle: \"Bike FAQ\"\nlayout: page\n---\n\nHello.\n");
        assert_eq!(doc.title.as_deref(), Some("Bike FAQ"));
        assert_eq!(doc.text, "Hello.");
        let doc = md("+++\ntitle = 'Toml'\n+++\n\n# Real H1\n\nHi.");
        assert_eq!(doc.title.as_deref(), Some("Real H1"));
    }

    #[test]
    fn html_drops_chrome_scripts_and_decodes_entities() {
        let doc = html(
            "<!DOCTYPE html><html><head><title>Shop &amp; Co</title><style>p { color: red }</style>\
<script>if (a < b && c > d) { document.write('<p>evil</p>') }</script></head>\
<body><nav><a href=/>Home</a></nav><header>Site header</header>\
<!-- a comment <p>hidden</p> -->\
<h1>Help</h1><p>Prices in &#x20AC; and &euro;&nbsp;only. Caf&eacute; &lt;open&gt;.</p>\
<h2>Returns</h2><div>Send it<br>back<img src=x alt=\"box photo\"></div><ul><li>one</li><li>two</li></ul>\
<h3>Refunds <em>fast</em></h3><p>In 5 days.</p><h2>Contact</h2><p>Mail us.</p>\
<footer>© footer</footer><SCRIPT type=text/javascript>var x = 1;</SCRIPT></body></html>",
        );
        assert_eq!(doc.title.as_deref(), Some("Shop & Co"));
        let all = &doc.text;
        for absent in [
            "evil",
            "color",
            "Home",
            "Site header",
            "hidden",
            "footer",
            "var x",
            "comment",
        ] {
            assert!(!all.contains(absent), "{absent:?} in {all:?}");
        }
        assert!(
            all.contains("Prices in € and € only. Café <open>."),
            "{all}"
        );
        let paths: Vec<String> = doc
            .sections
            .iter()
            .map(|s| s.headings.join(" / "))
            .collect();
        assert_eq!(
            paths,
            [
                "Help",
                "Help / Returns",
                "Help / Returns / Refunds fast",
                "Help / Contact"
            ]
        );
        assert_eq!(
            doc.sections[1].text,
            "Send it\nback box photo\n\n- one\n- two"
        );
        // An article's own header is content; hidden elements are not.
        let doc = html("<body><header>Logo</header><article><header><h1>Post</h1></header><p>Body.</p>\
<div hidden>secret</div><span aria-hidden=\"true\">icon</span><ul role=navigation><li>Menu</li></ul>\
<footer>Posted today</footer></article><footer>Legal</footer></body>");
        assert_eq!(doc.title.as_deref(), Some("Post"));
        assert_eq!(doc.text, "Post\n\nBody.\n\nPosted today");
        // Without <title>, the first <h1> is the title.
        assert_eq!(
            html("<h1>Only &amp; H1</h1><p>x</p>").title.as_deref(),
            Some("Only & H1")
        );
    }

    #[test]
    fn html_tables_and_pre() {
        let doc = html("<table><tr><th>A</th><th>B</th></tr><tr><td>1</td><td>2</td></tr></table><pre>  x  =  1\n  y = 2</pre><p>after</p>");
        assert_eq!(
            doc.sections[0].text,
            "A | B\n1 | 2\n\n  x  =  1\n  y = 2\n\nafter"
        );
    }

    #[test]
    fn text_is_one_section_with_bom_crlf_and_controls_cleaned() {
        let bytes =
            b"\xEF\xBB\xBFFirst para\x00graph.\r\nSame para.\r\n\r\nSecond\x07 one.\tTab kept.\r\n";
        let doc = extract(DocumentFormat::Text, bytes).unwrap();
        assert_eq!(doc.title, None);
        assert_eq!(doc.sections.len(), 1);
        assert!(doc.sections[0].headings.is_empty());
        assert_eq!(
            doc.text,
            "First paragraph.\nSame para.\n\nSecond one.\tTab kept."
        );
        let chunks = chunk("Notes", &doc, 800);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].heading, "Notes");
        assert_eq!(
            chunks[0].content,
            "First paragraph.\nSame para.\n\nSecond one. Tab kept."
        );
    }

    #[test]
    fn errors_for_bad_utf8_and_empty_documents() {
        for format in [
            DocumentFormat::Markdown,
            DocumentFormat::Html,
            DocumentFormat::Text,
        ] {
            assert!(matches!(
                extract(format, b"ok \xFF\xFE bad"),
                Err(ExtractError::NotUtf8)
            ));
            for empty in ["", "   \n\t \r\n ", "\u{feff}", "\0\0\0"] {
                assert!(
                    matches!(extract(format, empty.as_bytes()), Err(ExtractError::Empty)),
                    "{format:?} {empty:?}"
                );
            }
        }
        assert!(matches!(
            extract(DocumentFormat::Html, b"<script>x()</script><nav>menu</nav>"),
            Err(ExtractError::Empty)
        ));
        assert!(matches!(
            extract(DocumentFormat::Markdown, b"<!-- only -->"),
            Err(ExtractError::Empty)
        ));
    }

    #[test]
    fn guesses_formats() {
        use DocumentFormat::*;
        assert_eq!(guess_format(Some("Guide.MD"), None, b"# x"), Some(Markdown));
        assert_eq!(
            guess_format(Some("a.markdown"), Some("text/plain"), b""),
            Some(Markdown)
        );
        assert_eq!(
            guess_format(None, Some("text/markdown; charset=utf-8"), b""),
            Some(Markdown)
        );
        assert_eq!(guess_format(Some("index.htm"), None, b""), Some(Html));
        assert_eq!(guess_format(None, Some("TEXT/HTML"), b""), Some(Html));
        assert_eq!(guess_format(Some("notes.txt"), None, b""), Some(Text));
        assert_eq!(guess_format(None, Some("text/plain"), b""), Some(Text));
        assert_eq!(guess_format(Some("x.pdf"), None, b""), Some(Pdf));
        assert_eq!(guess_format(None, Some("application/pdf"), b""), Some(Pdf));
        // The magic wins over a wrong name or type.
        assert_eq!(
            guess_format(Some("x.txt"), Some("text/plain"), b"%PDF-1.7\n..."),
            Some(Pdf)
        );
        assert_eq!(
            guess_format(
                None,
                Some("application/octet-stream"),
                b"\xEF\xBB\xBF <!DOCTYPE html><p>"
            ),
            Some(Html)
        );
        assert_eq!(
            guess_format(Some("archive.zip"), Some("application/zip"), b"PK\x03\x04"),
            None
        );
        assert_eq!(guess_format(Some("README"), None, b"hello"), None);
        assert_eq!(
            guess_format(
                None,
                Some("text/markdown"),
                b"A PDF starts with `%PDF-1.7`."
            ),
            Some(Markdown)
        );
        assert_eq!(guess_format(None, None, b"\r\n%PDF-1.4"), Some(Pdf));
    }

    #[test]
    fn sentences_in_english_german_korean_and_cjk() {
        assert_eq!(
            sentences(
                "Hello there. This costs 3.50 €, e.g. for Mr. Smith! Really? Yes… \"Quoted.\" End"
            ),
            [
                "Hello there.",
                "This costs 3.50 €, e.g. for Mr. Smith!",
                "Really?",
                "Yes…",
                "\"Quoted.\"",
                "End"
            ]
        );
        assert_eq!(
            sentences(
                "Das gilt z. B. am 1. Januar bzw. danach. Rückgabe ist kostenlos! „Wirklich?“ Ja."
            ),
            [
                "Das gilt z. B. am 1. Januar bzw. danach.",
                "Rückgabe ist kostenlos!",
                "„Wirklich?“",
                "Ja."
            ]
        );
        assert_eq!(
            sentences("자전거는 앱에서 빌릴 수 있습니다. 요금은 얼마인가요? 30분에 1,000원입니다! 감사합니다"),
            ["자전거는 앱에서 빌릴 수 있습니다.", "요금은 얼마인가요?", "30분에 1,000원입니다!", "감사합니다"]
        );
        assert_eq!(
            sentences("今日は晴れです。明日は雨！本当？"),
            ["今日は晴れです。", "明日は雨！", "本当？"]
        );
        assert_eq!(
            sentences("example.com and v1.2.3 stay"),
            ["example.com and v1.2.3 stay"]
        );
        // "No." before a number is an abbreviation, elsewhere it can end a sentence.
        assert_eq!(
            sentences("See No. 5 for details. Can I park there? No. Use a dock. We sell bikes etc. The shop opens at 9."),
            [
                "See No. 5 for details.",
                "Can I park there?",
                "No.",
                "Use a dock.",
                "We sell bikes etc.",
                "The shop opens at 9."
            ]
        );
        assert_eq!(
            sentences("Es kostet ca. 20 €. Tel. 030 1234. Danach ist Schluss."),
            [
                "Es kostet ca. 20 €.",
                "Tel. 030 1234.",
                "Danach ist Schluss."
            ]
        );
    }

    #[test]
    fn chunks_cut_at_paragraphs_then_sentences_then_words() {
        let para = |n: usize, word: &str| {
            (0..n)
                .map(|i| format!("{word} number {i} is here."))
                .collect::<Vec<_>>()
                .join(" ")
        };
        // Three paragraphs of ~250 chars pack two per 600-char chunk.
        let text = [para(10, "Alpha"), para(10, "Beta"), para(10, "Gamma")].join("\n\n");
        let doc = extract(DocumentFormat::Text, text.as_bytes()).unwrap();
        let chunks = chunk("", &doc, 600);
        assert_chunks_sane(&chunks, 600);
        assert_eq!(chunks.len(), 2);
        assert!(chunks[0].content.starts_with("Alpha") && chunks[0].content.contains("\n\nBeta"));
        assert!(chunks[1].content.starts_with("Gamma"));
        assert_eq!(chunks[0].heading, "");

        // One long paragraph is cut at sentence ends.
        let long = para(60, "Delta");
        let doc = extract(DocumentFormat::Text, long.as_bytes()).unwrap();
        let chunks = chunk("T", &doc, 300);
        assert_chunks_sane(&chunks, 300);
        assert!(chunks.len() >= 5);
        for c in &chunks {
            assert!(
                c.content.starts_with("Delta number") && c.content.ends_with("is here."),
                "{:?}",
                c.content
            );
        }
        // The text survives whole (no overlap, nothing lost).
        let joined = chunks
            .iter()
            .map(|c| c.content.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(joined, long);

        // A sentence without an end is cut between words.
        let words = (0..400)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let doc = extract(DocumentFormat::Text, words.as_bytes()).unwrap();
        let chunks = chunk("T", &doc, 100);
        assert_chunks_sane(&chunks, 100);
        for c in &chunks {
            assert!(
                c.content
                    .split(' ')
                    .all(|w| w.starts_with('w') && w[1..].parse::<u32>().is_ok()),
                "{:?}",
                c.content
            );
        }
    }

    #[test]
    fn german_and_korean_chunks_end_at_sentence_ends() {
        let de = "Die Rückgabe ist z. B. am 1. Januar kostenlos. Räder werden bzw. können an jeder Station abgegeben werden! Gilt das auch für E-Bikes? Ja, ca. 20 Stationen nehmen sie an. ".repeat(8);
        let ko = "자전거는 앱에서 빌릴 수 있습니다. 요금은 30분에 1,000원입니다! 반납은 어디에서 하나요? 모든 정류장에서 반납할 수 있습니다. ".repeat(8);
        for (text, target) in [(de, 200), (ko, 100)] {
            let doc = extract(DocumentFormat::Text, text.as_bytes()).unwrap();
            let chunks = chunk("FAQ", &doc, target);
            assert_chunks_sane(&chunks, target);
            assert!(chunks.len() >= 4, "{}", chunks.len());
            for c in &chunks {
                assert!(c.content.ends_with(['.', '!', '?']), "{:?}", c.content);
                assert!(
                    !c.content.starts_with(|ch: char| ch.is_lowercase()),
                    "{:?}",
                    c.content
                );
                assert!(
                    !c.content.ends_with("z.")
                        && !c.content.ends_with("1.")
                        && !c.content.ends_with("ca.")
                );
            }
        }
    }

    #[test]
    fn chunks_stay_in_their_section_and_merge_a_tiny_tail() {
        let body = "A sentence of some forty characters ok. ".repeat(20);
        let doc = md(&format!(
            "# T\n\n## One\n\n{body}\n\nTiny tail.\n\n## Two\n\nShort."
        ));
        let chunks = chunk("T", &doc, 200);
        assert_chunks_sane(&chunks, 200);
        let one: Vec<_> = chunks.iter().filter(|c| c.heading == "T › One").collect();
        let two: Vec<_> = chunks.iter().filter(|c| c.heading == "T › Two").collect();
        assert_eq!(one.len() + two.len(), chunks.len());
        // "Short." is its own chunk: sections are never crossed.
        assert_eq!(two.len(), 1);
        assert_eq!(two[0].content, "Short.");
        // "Tiny tail." was merged into the previous chunk of its section.
        assert!(
            one.last().unwrap().content.ends_with("ok.\n\nTiny tail."),
            "{:?}",
            one.last()
        );
        assert!(one.iter().all(|c| c.content != "Tiny tail."));
    }

    #[test]
    fn megabyte_of_markdown_chunks_to_sizes_near_target() {
        let mut source = String::new();
        let mut section = 0;
        while source.len() < 1_000_000 {
            section += 1;
            source.push_str(&format!("## Section {section}\n\n"));
            for p in 0..6 {
                for s in 0..5 {
                    source.push_str(&format!(
                        "Paragraph {p} sentence {s} of section {section} talks about bikes. "
                    ));
                }
                source.push_str("\n\n- an item\n- another item\n\n");
            }
        }
        let started = std::time::Instant::now();
        let doc = md(&source);
        let chunks = chunk("Big", &doc, 800);
        let elapsed = started.elapsed();
        eprintln!(
            "1 MB Markdown: {} sections, {} chunks in {elapsed:?}",
            doc.sections.len(),
            chunks.len()
        );
        assert_eq!(doc.sections.len(), section);
        assert_chunks_sane(&chunks, 800);
        let total: usize = chunks.iter().map(|c| c.content.chars().count()).sum();
        assert!(total > 900_000, "text lost: {total}");
        let mean = total / chunks.len();
        assert!((500..=800).contains(&mean), "mean chunk {mean}");
        assert!(chunks
            .iter()
            .all(|c| c.heading.starts_with("Big › Section ")));
    }

    #[test]
    fn hostile_inputs_never_panic() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for round in 0..200 {
            let len = (rng.next() % 4000) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if round % 2 == 0 {
                // Mostly ASCII markup-ish noise, so the parsers get past the UTF-8 check.
                const NOISE: &[u8] = b"<>/!-#*`[]()|&;x \n\t\0abcp=\"'";
                for b in &mut bytes {
                    *b = NOISE[(*b as usize) % NOISE.len()];
                }
            }
            if round % 5 == 0 {
                bytes.splice(0..0, b"%PDF-1.4\n".iter().copied());
            }
            for format in DocumentFormat::ALL {
                if let Ok(doc) = extract(format, &bytes) {
                    assert_chunks_sane(&chunk("t", &doc, 100), 100);
                    assert!(!doc.text.contains('\0'));
                }
            }
        }
        // Deep nesting.
        let nested = format!(
            "{}deep{}",
            "<div><span>".repeat(50_000),
            "</span></div>".repeat(50_000)
        );
        assert!(html(&nested).text.contains("deep"));
        let quotes = format!("{}deep", "> ".repeat(5_000));
        assert!(md(&quotes).text.contains("deep"));
        let lists = (0..2_000)
            .map(|i| format!("{}- item", "  ".repeat(i)))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(md(&lists).text.contains("item"));
        // 1 MB without a newline or a space.
        let line = "x".repeat(1 << 20);
        for format in [
            DocumentFormat::Markdown,
            DocumentFormat::Html,
            DocumentFormat::Text,
        ] {
            let doc = extract(format, line.as_bytes()).unwrap();
            let chunks = chunk("t", &doc, 800);
            assert_chunks_sane(&chunks, 800);
            assert_eq!(
                chunks.iter().map(|c| c.content.len()).sum::<usize>(),
                1 << 20
            );
        }
        // Unclosed raw elements and comments swallow the rest, nothing more.
        assert!(
            matches!(extract(DocumentFormat::Html, b"<p>x</p><script>never closed <p>y"), Ok(d) if d.text == "x")
        );
        assert!(
            matches!(extract(DocumentFormat::Html, b"<p>x</p><!-- never closed"), Ok(d) if d.text == "x")
        );
    }

    fn tiny_pdf(text: Option<&str>, title: Option<&str>) -> Vec<u8> {
        use lopdf::content::{Content, Operation};
        use lopdf::{dictionary, Document, Object, Stream};
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
            "Encoding" => "WinAnsiEncoding",
        });
        let resources_id =
            doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
        let mut operations = Vec::new();
        if let Some(text) = text {
            operations.push(Operation::new("BT", vec![]));
            operations.push(Operation::new("Tf", vec!["F1".into(), 12.into()]));
            for (i, line) in text.lines().enumerate() {
                let y = 700 - 20 * i as i64;
                operations.push(Operation::new(
                    "Td",
                    vec![0.into(), if i == 0 { y.into() } else { (-20).into() }],
                ));
                operations.push(Operation::new("Tj", vec![Object::string_literal(line)]));
            }
            operations.push(Operation::new("ET", vec![]));
        }
        let content = Content { operations };
        let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
        });
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1,
                "Resources" => resources_id,
                "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            }),
        );
        let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog_id);
        if let Some(title) = title {
            let info_id = doc.add_object(dictionary! { "Title" => lopdf::text_string(title) });
            doc.trailer.set("Info", info_id);
        }
        doc.compress();
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();
        out
    }

    #[test]
    fn pdf_text_layer_and_title() {
        let bytes = tiny_pdf(
            Some("Bikes can be rented in the app.\nReturns are free."),
            Some("Rental guide"),
        );
        assert_eq!(guess_format(None, None, &bytes), Some(DocumentFormat::Pdf));
        let doc = extract(DocumentFormat::Pdf, &bytes).unwrap();
        assert_eq!(doc.title.as_deref(), Some("Rental guide"));
        assert!(
            doc.text.contains("Bikes can be rented in the app."),
            "{:?}",
            doc.text
        );
        assert!(doc.text.contains("Returns are free."), "{:?}", doc.text);
        let chunks = chunk("Rental guide", &doc, 800);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].heading, "Rental guide");
    }

    #[test]
    fn pdf_lines_join_and_tidy() {
        assert_eq!(
            join_pdf_lines("A para-\ngraph over\n  lines.\n\nNext \u{2014} e-\nMail stays."),
            "A paragraph over lines.\n\nNext \u{2014} e- Mail stays."
        );
        assert_eq!(
            join_pdf_lines(
                "1 Introduction : : : : : : : 1\n2.1 Syntax . . . . . . . . 2\nWait.... what"
            ),
            "1 Introduction … 1 2.1 Syntax … 2 Wait … what"
        );
        assert_eq!(
            unligature("speci\u{fb01}cation \u{fb02}ow"),
            "specification flow"
        );
    }

    #[test]
    fn pdf_errors_are_errors_not_panics() {
        let no_text = tiny_pdf(None, None);
        match extract(DocumentFormat::Pdf, &no_text) {
            Err(ExtractError::Pdf(why)) => assert!(why.contains("no text"), "{why}"),
            other => panic!("{other:?}"),
        }
        let good = tiny_pdf(Some("Hello PDF."), None);
        for bad in [
            b"%PDF-1.4\nthis is not a pdf".to_vec(),
            b"not even a header".to_vec(),
            Vec::new(),
            good[..good.len() / 2].to_vec(),
            good.iter()
                .enumerate()
                .map(|(i, b)| if i % 7 == 3 { b ^ 0x5A } else { *b })
                .collect(),
        ] {
            assert!(
                matches!(
                    extract(DocumentFormat::Pdf, &bad),
                    Err(ExtractError::Pdf(_))
                ),
                "{}",
                bad.len()
            );
        }
    }
}
