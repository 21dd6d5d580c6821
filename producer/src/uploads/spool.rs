//! Reading an upload once: the body arrives in chunks from the HTTP side
//! ([`BodyReader`], fed through a bounded channel, so a slow disk slows the
//! client rather than filling the memory), is gzip-decoded when it starts
//! with gzip's magic bytes, hashed (SHA-256 of the decoded CSV: the same file
//! gzipped or not is the same file), written to an unnamed temporary file
//! (gone with the process, whatever happens) and validated row by row, all
//! in one pass on a blocking thread. Memory stays flat whatever the size:
//! buffers of fixed size and the first `max_errors` errors.
//!
//! The size limit applies twice: to the bytes received, and to the decoded
//! bytes, so a small compressed body that decodes to terabytes (a zip bomb)
//! stops at the limit with 413 instead of filling the disk.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::rc::Rc;

use axum::body::Bytes;
use csv::ByteRecord;
use domain::ModelId;
use flate2::read::MultiGzDecoder;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::rows::Columns;

/// Buffers of the pipeline: large enough to read at disk speed, small
/// enough not to matter.
const BUFFER_BYTES: usize = 256 * 1024;
/// The most models an upload's row lists by name.
pub const MAX_LISTED_MODELS: usize = 100;
/// Distinct models are counted up to this many (a file with more says so
/// as this number): the set that counts them is the only thing that grows.
pub const MAX_COUNTED_MODELS: usize = 100_000;

/// One invalid row (or the header, line 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LineError {
    /// The line the row starts on (1 is the header row).
    #[schema(example = 7)]
    pub line: u64,
    /// The column to blame, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "outcome")]
    pub column: Option<&'static str>,
    #[schema(
        example = "unknown outcome \"banana\": expected w/l, 1/0, success/failure, or a run of w and l"
    )]
    pub message: String,
}

/// Why a body could not be read to the end. An invalid file is not one of
/// these: it is read to the end and its errors listed in [`Spooled`].
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("could not read the body: {0}")]
    Body(String),
    #[error("the body starts as gzip but is not valid gzip: {0}")]
    Gzip(String),
    /// The spool file could not be written (a full disk).
    #[error("spooling the upload: {0}")]
    Disk(#[source] io::Error),
}

/// What reading a body found.
#[derive(Debug)]
pub struct Spooled {
    /// The decoded CSV, rewound, for producing.
    pub file: File,
    /// How to read its rows (from its header).
    pub columns: Option<Columns>,
    pub sha256: String,
    /// Bytes of CSV, decoded.
    pub bytes: u64,
    pub rows: u64,
    pub trials: u64,
    pub models: Vec<String>,
    pub model_count: u64,
    /// The first `max_errors` errors, in line order.
    pub errors: Vec<LineError>,
    /// All of them.
    pub error_count: u64,
}

/// Failures of the reading pipeline, carried through `io::Error` so that
/// they come out of the gzip decoder and the CSV reader as what they are.
#[derive(Debug, thiserror::Error)]
enum Abort {
    #[error("too large")]
    TooLarge,
    #[error("{0}")]
    Body(String),
}

/// The request body as a `Read`: chunks from the channel, counted against
/// the limit.
#[derive(Debug)]
pub struct BodyReader {
    chunks: mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
    received: u64,
    limit: u64,
}

impl BodyReader {
    pub fn new(chunks: mpsc::Receiver<Result<Bytes, String>>, limit: u64) -> Self {
        Self {
            chunks,
            current: Bytes::new(),
            received: 0,
            limit,
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                None => return Ok(0),
                Some(Err(message)) => return Err(io::Error::other(Abort::Body(message))),
                Some(Ok(chunk)) => {
                    self.received += chunk.len() as u64;
                    if self.received > self.limit {
                        return Err(io::Error::other(Abort::TooLarge));
                    }
                    self.current = chunk;
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// The decoded CSV on its way to the parser: counted against the limit,
/// hashed and written to the spool file.
struct Tee<R> {
    inner: R,
    hasher: Sha256,
    spool: BufWriter<File>,
    bytes: u64,
    limit: u64,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        if self.bytes > self.limit {
            return Err(io::Error::other(Abort::TooLarge));
        }
        self.hasher.update(&buf[..n]);
        self.spool.write_all(&buf[..n]).map_err(DiskError::wrap)?;
        Ok(n)
    }
}

/// A write to the spool file that failed, told apart from a read failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct DiskError(io::Error);

impl DiskError {
    fn wrap(error: io::Error) -> io::Error {
        io::Error::other(DiskError(error))
    }
}

fn classify(error: io::Error, limit: u64) -> SpoolError {
    if let Some(inner) = error.get_ref() {
        if let Some(abort) = inner.downcast_ref::<Abort>() {
            return match abort {
                Abort::TooLarge => SpoolError::TooLarge { limit },
                Abort::Body(message) => SpoolError::Body(message.clone()),
            };
        }
        if inner.downcast_ref::<DiskError>().is_some() {
            return SpoolError::Disk(error);
        }
    }
    SpoolError::Gzip(error.to_string())
}

/// Reads `body` to the end into a new temporary file in `spool_dir` while
/// validating it (see the module docs). Blocking: run it on a blocking thread.
pub fn spool_and_validate(
    body: impl Read,
    spool: File,
    limit: u64,
    max_errors: usize,
    default_model: Option<ModelId>,
) -> Result<Spooled, SpoolError> {
    let mut body = BufReader::with_capacity(BUFFER_BYTES, body);
    let gzip = body
        .fill_buf()
        .map_err(|e| classify(e, limit))?
        .starts_with(&[0x1f, 0x8b]);
    let decoded: Box<dyn Read> = if gzip {
        Box::new(MultiGzDecoder::new(body))
    } else {
        Box::new(body)
    };
    let mut tee = Tee {
        inner: decoded,
        hasher: Sha256::new(),
        spool: BufWriter::with_capacity(BUFFER_BYTES, spool),
        bytes: 0,
        limit,
    };
    let mut found = Found::new(max_errors);
    let columns = {
        let (mut reader, lines) = csv_reader(&mut tee);
        validate(&mut reader, &lines, default_model, &mut found).map_err(|e| {
            match e.into_kind() {
                csv::ErrorKind::Io(error) => classify(error, limit),
                other => SpoolError::Body(format!("{other:?}")),
            }
        })?
    };
    // The parser stops at the last record; what follows (a final line
    // break) is part of the file too.
    io::copy(&mut tee, &mut io::sink()).map_err(|e| classify(e, limit))?;
    let Tee {
        hasher,
        spool,
        bytes,
        ..
    } = tee;
    let mut file = spool
        .into_inner()
        .map_err(|e| SpoolError::Disk(e.into_error()))?;
    file.rewind().map_err(SpoolError::Disk)?;
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if bytes == 0 {
        found.error(1, None, "empty file: expected a header row and rows".into());
    } else if columns.is_some() && found.rows == 0 && found.error_count == 0 {
        found.error(2, None, "no rows after the header row".into());
    }
    Ok(Spooled {
        file,
        columns,
        sha256,
        bytes,
        rows: found.rows,
        trials: found.trials,
        models: found.listed,
        model_count: found.counted.len() as u64,
        errors: found.errors,
        error_count: found.error_count,
    })
}

/// The one CSV dialect: comma-separated, `"` quotes, any line ending;
/// the header row is read by hand (see [`header`]). The [`Lines`] tell the
/// line each record starts on.
pub fn csv_reader<R: Read>(reader: R) -> (csv::Reader<LineCounting<R>>, Rc<RefCell<Lines>>) {
    let lines = Rc::new(RefCell::new(Lines::default()));
    let reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(BUFFER_BYTES)
        .from_reader(LineCounting {
            inner: reader,
            lines: lines.clone(),
        });
    (reader, lines)
}

/// Where the line breaks are, for the bytes the CSV reader has read but
/// not yet passed. The CSV reader's own line count lags by one after a CRLF
/// (it counts the `\n` only when it reads the next record), and a record's
/// id is its line: so lines are counted here, from the record's byte offset,
/// which is exact. Holds at most one reader buffer's worth of positions.
#[derive(Debug, Default)]
pub struct Lines {
    pending: VecDeque<u64>,
    passed: u64,
    read: u64,
}

impl Lines {
    /// The line of the byte at `offset` (1-based). Offsets must not go back.
    pub fn line_at(&mut self, offset: u64) -> u64 {
        // `<=`: a record never starts with a line break, but the reader
        // may place a record's start on the `\n` of the CRLF before it.
        while self.pending.front().is_some_and(|&at| at <= offset) {
            self.pending.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

/// A reader that notes where its line breaks are, in [`Lines`].
#[derive(Debug)]
pub struct LineCounting<R> {
    inner: R,
    lines: Rc<RefCell<Lines>>,
}

impl<R: Read> Read for LineCounting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut lines = self.lines.borrow_mut();
        let start = lines.read;
        for (index, _) in buf[..n].iter().enumerate().filter(|(_, &b)| b == b'\n') {
            lines.pending.push_back(start + index as u64);
        }
        lines.read += n as u64;
        Ok(n)
    }
}

/// The header row, without a UTF-8 byte order mark; `None` for an empty file.
pub fn header<R: Read>(reader: &mut csv::Reader<R>) -> Result<Option<ByteRecord>, csv::Error> {
    let mut record = ByteRecord::new();
    if !reader.read_byte_record(&mut record)? {
        return Ok(None);
    }
    let mut fields: Vec<Vec<u8>> = record.iter().map(<[u8]>::to_vec).collect();
    if let Some(first) = fields.first_mut() {
        if first.starts_with(b"\xEF\xBB\xBF") {
            first.drain(..3);
        }
    }
    Ok(Some(ByteRecord::from(fields)))
}

/// The line a record starts on.
pub fn line_of(record: &ByteRecord, lines: &RefCell<Lines>) -> u64 {
    let offset = record.position().map_or(0, csv::Position::byte);
    lines.borrow_mut().line_at(offset)
}

struct Found {
    rows: u64,
    trials: u64,
    listed: Vec<String>,
    counted: HashSet<ModelId>,
    errors: Vec<LineError>,
    error_count: u64,
    max_errors: usize,
}

impl Found {
    fn new(max_errors: usize) -> Self {
        Self {
            rows: 0,
            trials: 0,
            listed: Vec::new(),
            counted: HashSet::new(),
            errors: Vec::new(),
            error_count: 0,
            max_errors,
        }
    }

    fn error(&mut self, line: u64, column: Option<&'static str>, message: String) {
        self.error_count += 1;
        if self.errors.len() < self.max_errors {
            self.errors.push(LineError {
                line,
                column,
                message,
            });
        }
    }

    fn model(&mut self, model: &ModelId) {
        if self.counted.len() < MAX_COUNTED_MODELS && !self.counted.contains(model) {
            self.counted.insert(model.clone());
            if self.listed.len() < MAX_LISTED_MODELS {
                self.listed.push(model.to_string());
            }
        }
    }
}

/// Reads every row; returns the columns when the header is valid.
fn validate<R: Read>(
    reader: &mut csv::Reader<R>,
    lines: &RefCell<Lines>,
    default_model: Option<ModelId>,
    found: &mut Found,
) -> Result<Option<Columns>, csv::Error> {
    let Some(header) = header(reader)? else {
        return Ok(None);
    };
    let mut columns = match Columns::from_header(&header, default_model) {
        Ok(columns) => columns,
        Err(error) => {
            found.error(1, error.column, error.message);
            return Ok(None);
        }
    };
    let mut record = ByteRecord::new();
    let mut last_model: Option<ModelId> = None;
    while reader.read_byte_record(&mut record)? {
        let line = line_of(&record, lines);
        match columns.parse_row(&record) {
            Ok(row) => {
                found.rows += 1;
                found.trials += row.successes + row.failures;
                if last_model.as_ref() != Some(row.model) {
                    let model = row.model.clone();
                    found.model(&model);
                    last_model = Some(model);
                }
            }
            Err(error) => found.error(line, error.column, error.message),
        }
    }
    Ok(Some(columns))
}
