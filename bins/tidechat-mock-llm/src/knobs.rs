//! The mock's behaviour knobs and where they come from.

use std::fmt;
use std::str::FromStr;

/// An injected failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    /// Answer with this HTTP status (and an error body in the provider's
    /// format) instead of a reply.
    Status(u16),
    /// Send this many content pieces, then abort the connection.
    DropAfter(u32),
    /// Send this many content pieces, then send nothing more while keeping
    /// the connection open.
    StallAfter(u32),
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        let number = |what: &str| {
            arg.parse::<u32>()
                .map_err(|_| format!("fault {what} needs a number, e.g. {what}:3"))
        };
        match kind {
            "" | "none" => Ok(Self::None),
            "status" => arg
                .parse::<u16>()
                .ok()
                .filter(|c| (400..=599).contains(c))
                .map(Self::Status)
                .ok_or_else(|| "fault status needs a code 400..=599, e.g. status:500".to_string()),
            "drop_after" => number("drop_after").map(Self::DropAfter),
            "stall_after" => number("stall_after").map(Self::StallAfter),
            "stall" => Ok(Self::StallAfter(0)),
            other => Err(format!(
                "unknown fault {other:?} (none, status:CODE, drop_after:N, stall_after:N, stall)"
            )),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Status(code) => write!(f, "status:{code}"),
            Self::DropAfter(n) => write!(f, "drop_after:{n}"),
            Self::StallAfter(n) => write!(f, "stall_after:{n}"),
        }
    }
}

/// How the mock answers one request. The server's defaults come from CLI
/// flags / `MOCK_LLM_*` environment variables; each request may override any
/// knob with an `x-mock-<knob>` header (`-` or `_`) or in its model name
/// (`"model": "mock?ttft_ms=50&chunks=64"`, values URL-encoded), the model
/// name winning.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct Knobs {
    /// Delay before the first content piece (streaming) or the response
    /// (non-streaming), in ms.
    #[arg(long, env = "MOCK_LLM_TTFT_MS", default_value_t = 0)]
    pub ttft_ms: u64,
    /// Number of words in a text reply ("token0 token1 ... ", each word with
    /// a trailing space); also its output_tokens.
    #[arg(long, env = "MOCK_LLM_CHUNKS", default_value_t = 8)]
    pub chunks: u32,
    /// Delay between content pieces, in ms.
    #[arg(long, env = "MOCK_LLM_GAP_MS", default_value_t = 0)]
    pub gap_ms: u64,
    /// Characters per streamed piece; 0 streams one word per piece.
    #[arg(long, env = "MOCK_LLM_CHUNK_CHARS", default_value_t = 0)]
    pub chunk_chars: usize,
    /// Report usage (OpenAI streaming reports it only if the request asks
    /// with stream_options.include_usage, like the real API).
    #[arg(long, env = "MOCK_LLM_USAGE", default_value_t = true, action = clap::ArgAction::Set)]
    pub usage: bool,
    /// none | status:CODE | drop_after:N | stall_after:N | stall (= stall_after:0).
    #[arg(long, env = "MOCK_LLM_FAULT", default_value_t = Fault::None)]
    pub fault: Fault,
    /// Apply the fault only to the first N requests with the same `key`
    /// (0 = every request).
    #[arg(long, env = "MOCK_LLM_FAIL_FIRST", default_value_t = 0)]
    pub fail_first: u32,
    /// Counter key for fail_first; empty = the request's whole model name.
    #[arg(long, env = "MOCK_LLM_KEY", default_value = "")]
    pub key: String,
    /// Tool script: when set and the conversation does not end with a tool
    /// result, answer with a call of this tool (which the request must
    /// offer); after a tool result, answer with text.
    #[arg(long, env = "MOCK_LLM_TOOL", default_value = "")]
    pub tool: String,
    /// JSON arguments of the scripted tool call.
    #[arg(long, env = "MOCK_LLM_TOOL_ARGS", default_value = "{}")]
    pub tool_args: String,
    /// Number of pieces the tool arguments are streamed in; also the tool
    /// reply's output_tokens.
    #[arg(long, env = "MOCK_LLM_ARG_PIECES", default_value_t = 3)]
    pub arg_pieces: u32,
    /// Length of the vectors `POST /v1/embeddings` returns.
    #[arg(long, env = "MOCK_LLM_DIMS", default_value_t = 256)]
    pub dims: usize,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            ttft_ms: 0,
            chunks: 8,
            gap_ms: 0,
            chunk_chars: 0,
            usage: true,
            fault: Fault::None,
            fail_first: 0,
            key: String::new(),
            tool: String::new(),
            tool_args: "{}".to_string(),
            arg_pieces: 3,
            dims: 256,
        }
    }
}

fn parse<T: FromStr>(name: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("bad value {value:?} for knob {name}"))
}

fn parse_bool(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(format!("bad value {value:?} for knob {name}")),
    }
}

impl Knobs {
    /// Sets one knob by name.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        match name.replace('-', "_").as_str() {
            "ttft_ms" => self.ttft_ms = parse(name, value)?,
            "chunks" => self.chunks = parse(name, value)?,
            "gap_ms" => self.gap_ms = parse(name, value)?,
            "chunk_chars" => self.chunk_chars = parse(name, value)?,
            "usage" => self.usage = parse_bool(name, value)?,
            "fault" => self.fault = value.parse()?,
            "fail_first" => self.fail_first = parse(name, value)?,
            "key" => self.key = value.to_string(),
            "tool" => self.tool = value.to_string(),
            "tool_args" => self.tool_args = value.to_string(),
            "arg_pieces" => self.arg_pieces = parse::<u32>(name, value)?.max(1),
            "dims" => self.dims = parse::<usize>(name, value)?.clamp(1, 4096),
            _ => return Err(format!("unknown knob {name:?}")),
        }
        Ok(())
    }

    /// Applies `k=v&k=v` (URL-encoded values), as found after `?` in a
    /// model name.
    pub fn apply_query(&mut self, query: &str) -> Result<(), String> {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = urlencoding::decode(value)
                .map_err(|_| format!("knob {name}: value is not valid UTF-8"))?;
            self.set(name, &value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_faults_and_queries() {
        assert_eq!("status:429".parse::<Fault>().unwrap(), Fault::Status(429));
        assert_eq!(
            "drop_after:5".parse::<Fault>().unwrap(),
            Fault::DropAfter(5)
        );
        assert_eq!("stall".parse::<Fault>().unwrap(), Fault::StallAfter(0));
        assert!("status:200".parse::<Fault>().is_err());
        assert!("explode".parse::<Fault>().is_err());
        let mut k = Knobs::default();
        k.apply_query(
            "ttft_ms=50&chunks=64&fault=drop_after:5&tool_args=%7B%22q%22%3A1%7D&usage=off",
        )
        .unwrap();
        assert_eq!((k.ttft_ms, k.chunks, k.usage), (50, 64, false));
        assert_eq!(k.fault, Fault::DropAfter(5));
        assert_eq!(k.tool_args, r#"{"q":1}"#);
        assert!(k.apply_query("nope=1").is_err());
        assert!(k.set("gap-ms", "7").is_ok());
        assert_eq!(k.gap_ms, 7);
    }
}
