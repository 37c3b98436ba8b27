//! Date normalisation: dates written the ways people write them, in several languages, mapped
//! to ISO `YYYY-MM-DD` — the classic first task for content attention.
//!
//! Month and weekday names are the real ones from glibc's locale sources
//! (`/usr/share/i18n/locales/<locale>`, section `LC_TIME`, keywords `mon`, `abmon`, `day`,
//! `abday`; Debian package `locales`), parsed here: `comment_char` / `escape_char` headers,
//! continuation lines, `<Uxxxx>` code points and `copy "other"` are understood. Weekdays are
//! the true weekday of each date.
//!
//! Held-out dates are chosen by a hash of the date itself, so no test date (in any format or
//! language) is ever seen in training.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::rng::Rng;

/// Where Debian keeps the locale sources.
pub const LOCALE_DIR: &str = "/usr/share/i18n/locales";

/// The locales the task draws from by default.
pub const DEFAULT_LOCALES: [&str; 8] = ["en_US", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_PT", "sv_SE"];

/// Month and weekday names of one locale, from its `LC_TIME` section.
#[derive(Debug, Clone, PartialEq)]
pub struct LocaleNames {
    /// The locale's name (`de_DE`).
    pub name: String,
    /// Full month names, January first.
    pub mon: Vec<String>,
    /// Abbreviated month names.
    pub abmon: Vec<String>,
    /// Full weekday names, Sunday first.
    pub day: Vec<String>,
    /// Abbreviated weekday names, Sunday first.
    pub abday: Vec<String>,
    /// The locale's numeric date form (`d_fmt`, e.g. `%d.%m.%Y`), if it has one.
    pub d_fmt: Option<String>,
}

impl LocaleNames {
    /// The language code, the part of the locale's name before `_` (`de` of `de_DE`).
    pub fn language(&self) -> &str {
        self.name.split('_').next().unwrap_or("")
    }
}

/// Decodes one locale string body: `<Uxxxx>` code points and `escape_char` + char.
fn decode(body: &str, escape: char) -> Result<String> {
    let mut out = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == escape {
            out.push(chars.next().context("dangling escape character")?);
        } else if c == '<' {
            let code: String = chars.by_ref().take_while(|&c| c != '>').collect();
            let hex = code.strip_prefix('U').with_context(|| format!("unknown symbol <{code}>"))?;
            let n = u32::from_str_radix(hex, 16).with_context(|| format!("bad code point <{code}>"))?;
            out.push(char::from_u32(n).with_context(|| format!("invalid code point <{code}>"))?);
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// The quoted strings of a value: `"a";"b";…`.
fn strings(value: &str, escape: char) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('"').with_context(|| format!("expected a quoted string at `{rest}`"))?;
        let mut end = None;
        let mut escaped = false;
        for (i, c) in inner.char_indices() {
            if escaped {
                escaped = false;
            } else if c == escape {
                escaped = true;
            } else if c == '"' {
                end = Some(i);
                break;
            }
        }
        let end = end.with_context(|| format!("unterminated string in `{value}`"))?;
        out.push(decode(&inner[..end], escape)?);
        rest = inner[end + 1..].trim_start();
        rest = rest.strip_prefix(';').unwrap_or(rest).trim_start();
    }
    Ok(out)
}

/// Parses the `LC_TIME` names of a locale source text. `load` resolves `copy "other"`.
pub fn parse_lc_time(name: &str, text: &str, load: &dyn Fn(&str) -> Result<LocaleNames>) -> Result<LocaleNames> {
    let (mut comment, mut escape) = ('#', '\\');
    // Logical lines: a line ending in the escape character continues on the next.
    let mut lines: Vec<String> = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let trimmed = raw.trim();
        if pending.is_empty() {
            if let Some(c) = trimmed.strip_prefix("comment_char").and_then(|r| r.trim().chars().next()) {
                comment = c;
                continue;
            }
            if let Some(c) = trimmed.strip_prefix("escape_char").and_then(|r| r.trim().chars().next()) {
                escape = c;
                continue;
            }
            if trimmed.starts_with(comment) {
                continue;
            }
        }
        if let Some(head) = trimmed.strip_suffix(escape).filter(|h| !h.ends_with(escape)) {
            pending.push_str(head);
            continue;
        }
        pending.push_str(trimmed);
        lines.push(std::mem::take(&mut pending));
    }
    let start = lines.iter().position(|l| l == "LC_TIME").with_context(|| format!("{name}: no LC_TIME section"))?;
    let end = lines[start..]
        .iter()
        .position(|l| l.starts_with("END LC_TIME"))
        .with_context(|| format!("{name}: LC_TIME is not terminated"))?;
    let mut names =
        LocaleNames { name: name.to_string(), mon: vec![], abmon: vec![], day: vec![], abday: vec![], d_fmt: None };
    let mut copied: Option<LocaleNames> = None;
    for line in &lines[start + 1..start + end] {
        let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let field = match key {
            "mon" => &mut names.mon,
            "abmon" => &mut names.abmon,
            "day" => &mut names.day,
            "abday" => &mut names.abday,
            "d_fmt" => {
                names.d_fmt = strings(value, escape).with_context(|| format!("{name}: d_fmt"))?.pop();
                continue;
            }
            "copy" => {
                let other = strings(value, escape)?.pop().with_context(|| format!("{name}: empty copy"))?;
                copied = Some(load(&other).with_context(|| format!("{name}: copying LC_TIME from {other}"))?);
                continue;
            }
            _ => continue,
        };
        *field = strings(value, escape).with_context(|| format!("{name}: {key}"))?;
    }
    if let Some(c) = copied {
        if names.d_fmt.is_none() {
            names.d_fmt = c.d_fmt;
        }
        for (mine, theirs) in
            [(&mut names.mon, c.mon), (&mut names.abmon, c.abmon), (&mut names.day, c.day), (&mut names.abday, c.abday)]
        {
            if mine.is_empty() {
                *mine = theirs;
            }
        }
    }
    for (key, v, n) in
        [("mon", &names.mon, 12), ("abmon", &names.abmon, 12), ("day", &names.day, 7), ("abday", &names.abday, 7)]
    {
        if v.len() != n || v.iter().any(|s| s.trim().is_empty()) {
            bail!("{name}: LC_TIME `{key}` has {} names, expected {n} non-empty ones", v.len());
        }
    }
    Ok(names)
}

/// Loads a locale's names from `dir` (following `copy` directives within `dir`).
pub fn load_locale(dir: &Path, name: &str) -> Result<LocaleNames> {
    fn go(dir: &Path, name: &str, depth: usize) -> Result<LocaleNames> {
        if depth > 8 {
            bail!("{name}: too many nested `copy` directives");
        }
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("{}: cannot read the locale source (install the Debian package `locales`)", path.display())
        })?;
        parse_lc_time(name, &text, &|other| go(dir, other, depth + 1))
    }
    go(dir, name, 0)
}

/// A calendar date (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year.
    pub year: i32,
    /// Month, 1–12.
    pub month: u32,
    /// Day of the month, 1-based.
    pub day: u32,
}

impl Date {
    /// Days since 1970-01-01 (Hinnant's `days_from_civil`).
    pub fn days(self) -> i64 {
        let y = self.year as i64 - (self.month <= 2) as i64;
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = self.month as i64;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + self.day as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` after 1970-01-01 (Hinnant's `civil_from_days`).
    pub fn from_days(days: i64) -> Self {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        Self { year: (yoe + era * 400 + (month <= 2) as i64) as i32, month, day }
    }

    /// Weekday, 0 = Sunday (1970-01-01 was a Thursday).
    pub fn weekday(self) -> usize {
        (self.days() + 4).rem_euclid(7) as usize
    }

    /// `YYYY-MM-DD`.
    pub fn iso(self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// The date written `YYYY-MM-DD`, if `text` is one that exists (`2001-02-31` is not).
    pub fn from_iso(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits(0..4) || !digits(5..7) || !digits(8..10) {
            return None;
        }
        let date =
            Self { year: text[..4].parse().ok()?, month: text[5..7].parse().ok()?, day: text[8..].parse().ok()? };
        let real = (1..=12).contains(&date.month) && date.day >= 1 && Self::from_days(date.days()) == date;
        real.then_some(date)
    }
}

/// Where Debian's `tzdata` keeps the time-zone table (one zone a country, `zone.tab`) whose zone names give the task its place
/// names (`Europe/Berlin` → `Berlin`), for datelines such as "Berlin, den 9. November 1989".
pub const ZONE_TABLE: &str = "/usr/share/zoneinfo/zone.tab";

/// The first and last year of the task's dates.
pub const YEARS: (i32, i32) = (1000, 2999);

/// The century a two-digit year stands for: `yy` is `1950 + (yy − 50) mod 100`, so 50–99 are
/// 1950–1999 and 00–49 are 2000–2049 (the pivot rule; only dates of those years are written
/// with two digits).
pub const TWO_DIGIT_YEARS: (i32, i32) = (1950, 2049);

/// One way of writing a date: a template over the fields below, the language it belongs to
/// (`*`: every language) and whether it is held out of training.
///
/// Fields: `{d}` day, `{dd}` day in two digits, `{o}` the day as an ordinal ([`ordinal`]),
/// `{m}` / `{mm}` month number, `{Y}` year, `{yy}` two-digit year ([`TWO_DIGIT_YEARS`]),
/// `{MONTH}` / `{mon}` the locale's full / abbreviated month name, `{mon.}` the abbreviation
/// with a full stop (none when it has one or is the whole name: "Nov.", "mai"), `{DAY}` /
/// `{day}` / `{day.}` the same for the weekday, `{city}` a place name, `{state}` a US state as
/// newspapers abbreviate it ("Calif."). Everything else is written as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// Language code (`de`), the part of a locale's name before `_`; `*` for all.
    pub lang: &'static str,
    /// The template.
    pub template: &'static str,
    /// Never drawn for training or validation: the held-out-format split.
    pub held_out: bool,
}

const fn f(lang: &'static str, template: &'static str) -> Format {
    Format { lang, template, held_out: false }
}

const fn held(lang: &'static str, template: &'static str) -> Format {
    Format { lang, template, held_out: true }
}

/// The ways dates are written, by language: the orders, articles and prepositions each
/// language's dates use (English month-first and day-first, German "9. November" and "am",
/// French "le" and "1er", Spanish and Portuguese "de" and "del", Italian "il", Swedish "den"),
/// datelines with a place, numeric forms with `/ . -` and spaces, weekday prefixes. Each
/// locale's own `d_fmt` (its numeric form) is drawn as well ([`DateTask::formats`]).
pub const FORMATS: &[Format] = &[
    // Every language.
    f("*", "{d} {MONTH} {Y}"),
    f("*", "{dd} {MONTH} {Y}"),
    f("*", "{d} {mon} {Y}"),
    f("*", "{DAY} {d} {MONTH} {Y}"),
    f("*", "{DAY}, {d} {MONTH} {Y}"),
    f("*", "{day} {dd} {mon} {Y}"),
    f("*", "{city}, {d} {MONTH} {Y}"),
    f("*", "{d} {MONTH} {yy}"),
    f("*", "{Y}-{mm}-{dd}"),
    f("*", "{Y}/{mm}/{dd}"),
    f("*", "{Y}/{m}/{d}"),
    f("*", "{dd} {mm} {Y}"),
    f("*", "{dd}.{mm}.{Y}"),
    f("*", "{dd}/{mm}/{Y}"),
    f("*", "{dd}-{mm}-{Y}"),
    f("*", "{d}.{m}.{yy}"),
    held("*", "{Y}.{mm}.{dd}"),
    // English: month first and day first, ordinals, the RFC 2822 form, US numeric forms and
    // newspaper datelines.
    f("en", "{MONTH} {d}, {Y}"),
    f("en", "{MONTH} {d} {Y}"),
    f("en", "{mon} {d}, {Y}"),
    f("en", "{mon} {d} {Y}"),
    f("en", "{mon.} {d}, {Y}"),
    f("en", "{mon.} {d} {Y}"),
    f("en", "{MONTH} {o}, {Y}"),
    f("en", "{MONTH} {o} {Y}"),
    f("en", "{mon} {o}, {Y}"),
    f("en", "{mon.} {o} {Y}"),
    f("en", "{DAY}, {MONTH} {d}, {Y}"),
    f("en", "{DAY}, {MONTH} {o}, {Y}"),
    f("en", "{DAY}, {mon.} {d}, {Y}"),
    f("en", "{day}, {MONTH} {d}, {Y}"),
    f("en", "{day.}, {MONTH} {d}, {Y}"),
    f("en", "{day.}, {mon.} {d}, {Y}"),
    f("en", "{o} {MONTH} {Y}"),
    f("en", "{o} {MONTH}, {Y}"),
    f("en", "{o} of {MONTH} {Y}"),
    f("en", "the {o} of {MONTH} {Y}"),
    f("en", "the {o} of {MONTH}, {Y}"),
    f("en", "{DAY} {o} {MONTH} {Y}"),
    f("en", "{DAY}, {o} {MONTH} {Y}"),
    f("en", "{DAY}, the {o} of {MONTH}, {Y}"),
    f("en", "{day}, {d} {mon} {Y}"),
    f("en", "{dd} {mon} {Y}"),
    f("en", "{m}/{d}/{Y}"),
    f("en", "{mm}/{dd}/{Y}"),
    f("en", "{m}/{d}/{yy}"),
    f("en", "{m}-{d}-{Y}"),
    f("en", "{city}, {o} {MONTH} {Y}"),
    f("en", "{city}, {MONTH} {d}, {Y}"),
    f("en", "{city}, {mon.} {d}, {Y}"),
    f("en", "{city}, {state}, {mon.} {d}, {Y}"),
    f("en", "{city}, {state}, {MONTH} {d}, {Y}"),
    held("en", "{DAY} the {o} of {MONTH} {Y}"),
    // German.
    f("de", "{d}. {MONTH} {Y}"),
    f("de", "{dd}. {MONTH} {Y}"),
    f("de", "{d}. {mon} {Y}"),
    f("de", "{d}. {mon.} {Y}"),
    f("de", "{DAY}, {d}. {MONTH} {Y}"),
    f("de", "{DAY}, den {d}. {MONTH} {Y}"),
    f("de", "{DAY}, {dd}.{mm}.{Y}"),
    f("de", "{day}, {d}. {mon} {Y}"),
    f("de", "{day}., {d}. {MONTH} {Y}"),
    f("de", "am {d}. {MONTH} {Y}"),
    f("de", "den {d}. {MONTH} {Y}"),
    f("de", "am {DAY}, {d}. {MONTH} {Y}"),
    f("de", "{city}, den {d}. {MONTH} {Y}"),
    f("de", "{city}, {d}. {MONTH} {Y}"),
    f("de", "{city}, {dd}.{mm}.{Y}"),
    f("de", "{d}.{m}.{Y}"),
    f("de", "{d}. {m}. {Y}"),
    f("de", "{dd}.{mm}.{yy}"),
    f("de", "{d}. {MONTH} {yy}"),
    held("de", "{DAY}, {d}. {mon.} {Y}"),
    // French.
    f("fr", "{o} {MONTH} {Y}"),
    f("fr", "le {d} {MONTH} {Y}"),
    f("fr", "le {o} {MONTH} {Y}"),
    f("fr", "{DAY} {o} {MONTH} {Y}"),
    f("fr", "le {DAY} {d} {MONTH} {Y}"),
    f("fr", "{day} {d} {mon} {Y}"),
    f("fr", "{city}, le {d} {MONTH} {Y}"),
    f("fr", "{city}, le {o} {MONTH} {Y}"),
    f("fr", "{city}, {DAY} {d} {MONTH} {Y}"),
    f("fr", "{d}/{m}/{Y}"),
    f("fr", "{dd}/{mm}/{yy}"),
    held("fr", "{city}, le {DAY} {d} {MONTH} {Y}"),
    // Spanish.
    f("es", "{d} de {MONTH} de {Y}"),
    f("es", "{o} de {MONTH} de {Y}"),
    f("es", "el {d} de {MONTH} de {Y}"),
    f("es", "el {o} de {MONTH} de {Y}"),
    f("es", "{d} de {MONTH} del {Y}"),
    f("es", "el {d} de {MONTH} del {Y}"),
    f("es", "{DAY}, {d} de {MONTH} de {Y}"),
    f("es", "{DAY} {d} de {MONTH} de {Y}"),
    f("es", "{DAY}, {d} de {MONTH} del {Y}"),
    f("es", "{city}, {d} de {MONTH} de {Y}"),
    f("es", "{city}, {o} de {MONTH} de {Y}"),
    f("es", "{d} {mon.} {Y}"),
    f("es", "{d}-{mon}-{Y}"),
    f("es", "{d}/{m}/{Y}"),
    f("es", "{dd}/{mm}/{yy}"),
    held("es", "{DAY} {d} de {MONTH} del {Y}"),
    // Portuguese.
    f("pt", "{d} de {MONTH} de {Y}"),
    f("pt", "{o} de {MONTH} de {Y}"),
    f("pt", "{DAY}, {d} de {MONTH} de {Y}"),
    f("pt", "{DAY} {d} de {MONTH} de {Y}"),
    f("pt", "{city}, {d} de {MONTH} de {Y}"),
    f("pt", "{city}, {o} de {MONTH} de {Y}"),
    f("pt", "{d} {mon.} {Y}"),
    f("pt", "{d}/{m}/{Y}"),
    f("pt", "{dd}/{mm}/{yy}"),
    // Italian.
    f("it", "{o} {MONTH} {Y}"),
    f("it", "il {d} {MONTH} {Y}"),
    f("it", "il {o} {MONTH} {Y}"),
    f("it", "{DAY} {o} {MONTH} {Y}"),
    f("it", "{city}, {o} {MONTH} {Y}"),
    f("it", "{d}/{m}/{Y}"),
    f("it", "{dd}/{mm}/{yy}"),
    // Dutch.
    f("nl", "{d} {mon.} {Y}"),
    f("nl", "{city}, {DAY} {d} {MONTH} {Y}"),
    f("nl", "{d}-{m}-{Y}"),
    f("nl", "{dd}-{mm}-{yy}"),
    // Swedish.
    f("sv", "den {d} {MONTH} {Y}"),
    f("sv", "den {o} {MONTH} {Y}"),
    f("sv", "{DAY} den {d} {MONTH} {Y}"),
    f("sv", "{DAY} den {o} {MONTH} {Y}"),
    f("sv", "{city} den {d} {MONTH} {Y}"),
    f("sv", "{city}, den {d} {MONTH} {Y}"),
    f("sv", "{o} {MONTH} {Y}"),
    f("sv", "{d}/{m} {Y}"),
    f("sv", "{d}/{m}/{Y}"),
];

/// US state abbreviations as US newspapers write them in datelines (AP style; "D.C." for the
/// capital); the states AP leaves unabbreviated are not here.
pub const US_STATES: [&str; 41] = [
    "Ala.", "Ariz.", "Ark.", "Calif.", "Colo.", "Conn.", "Del.", "D.C.", "Fla.", "Ga.", "Ill.", "Ind.", "Kan.", "Ky.",
    "La.", "Md.", "Mass.", "Mich.", "Minn.", "Miss.", "Mo.", "Mont.", "Neb.", "Nev.", "N.H.", "N.J.", "N.M.", "N.Y.",
    "N.C.", "N.D.", "Okla.", "Ore.", "Pa.", "R.I.", "S.C.", "S.D.", "Tenn.", "Vt.", "Va.", "Wash.", "Wis.",
];

/// The day as an ordinal in `lang`, `variant` choosing among a language's written forms:
/// English 1st, 2nd, 3rd, 4th, 11th–13th, 21st…; French 1er for the first and the plain number
/// otherwise; Spanish, Portuguese and Italian mark only the first (1º, 1.º, 1°); Swedish 1:a,
/// 2:a, 3:e… (`:a` after a last digit 1 or 2, except 11 and 12); German the number and a full
/// stop (3.); other languages the plain number.
pub fn ordinal(lang: &str, day: u32, variant: u32) -> String {
    match lang {
        "en" => {
            let suffix = match (day % 10, day % 100) {
                (_, 11..=13) => "th",
                (1, _) => "st",
                (2, _) => "nd",
                (3, _) => "rd",
                _ => "th",
            };
            format!("{day}{suffix}")
        }
        "fr" if day == 1 => "1er".into(),
        "es" | "pt" | "it" if day == 1 => ["1º", "1.º", "1°"][variant as usize % 3].into(),
        "sv" => format!("{day}:{}", if matches!(day % 10, 1 | 2) && !matches!(day, 11 | 12) { "a" } else { "e" }),
        "de" => format!("{day}."),
        _ => day.to_string(),
    }
}

/// The locale's `d_fmt` as a [`Format`] template (`%d.%m.%Y` → `{dd}.{mm}.{Y}`), if it uses only
/// the day, month and year conversions (`%d %e %-d %m %-m %Y %y`).
pub fn d_fmt_template(d_fmt: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = d_fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let field = match chars.next()? {
            'd' => "{dd}",
            'e' => "{d}",
            'm' => "{mm}",
            'Y' => "{Y}",
            'y' => "{yy}",
            '-' => match chars.next()? {
                'd' => "{d}",
                'm' => "{m}",
                _ => return None,
            },
            _ => return None,
        };
        out.push_str(field);
    }
    (out.contains("{Y}") || out.contains("{yy}")).then_some(out)
}

/// Whether `template` writes a date in numbers with the month before the day and the year last
/// (`{m}/{d}/{Y}`).
fn month_first_numeric(template: &str) -> bool {
    let at = |keys: &[&str]| keys.iter().filter_map(|k| template.find(k)).min();
    let named = ["{MONTH}", "{mon}", "{mon.}"].iter().any(|k| template.contains(k));
    // Year first (`{Y}-{mm}-{dd}`) is read year, month, day everywhere.
    let year = at(&["{Y}", "{yy}"]).unwrap_or(usize::MAX);
    match (at(&["{m}", "{mm}"]), at(&["{d}", "{dd}", "{o}"])) {
        (Some(m), Some(d)) => !named && m < d && m < year,
        _ => false,
    }
}

/// How the letters of a rendering are cased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// As the locale writes them.
    AsIs,
    /// All lower case.
    Lower,
    /// All upper case.
    Upper,
    /// The first letter upper case ("Le 14 juillet 1789").
    Capitalised,
}

/// What else a rendering draws: the casing, a place, a state, and `variant`, whose bits pick
/// among a language's alternatives (which ordinal mark; English "Sept" for "Sep"; Portuguese
/// weekdays with or without "-feira").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Style {
    /// Casing.
    pub case: Case,
    /// The place of `{city}`.
    pub city: String,
    /// The state of `{state}`.
    pub state: String,
    /// Alternative forms.
    pub variant: u32,
}

impl Style {
    /// As the locale writes it, "Berlin" and "D.C." for the place fields, the first forms.
    pub fn plain() -> Self {
        Self { case: Case::AsIs, city: "Berlin".into(), state: "D.C.".into(), variant: 0 }
    }
}

/// The weekday's full name; Portuguese workdays also take "-feira" (segunda-feira … sexta-feira,
/// the full form that glibc's pt_PT shortens).
fn weekday_name(lang: &str, names: &LocaleNames, wd: usize, variant: u32) -> String {
    let name = &names.day[wd];
    if lang == "pt" && (1..=5).contains(&wd) && variant & 8 != 0 && !name.contains('-') {
        return format!("{name}-feira");
    }
    name.clone()
}

/// The abbreviated month; English writes September "Sept" too.
fn month_abbreviation(lang: &str, names: &LocaleNames, m: usize, variant: u32) -> String {
    let ab = &names.abmon[m];
    if lang == "en" && m == 8 && variant & 4 != 0 { "Sept".into() } else { ab.clone() }
}

/// An abbreviation with a full stop, unless it ends with one or is no shorter than `full`.
fn dotted(ab: &str, full: &str) -> String {
    if ab.ends_with('.') || ab.chars().count() >= full.chars().count() { ab.to_string() } else { format!("{ab}.") }
}

/// Writes `date` by `template` (see [`Format`]) with `names` in `style`. A month-first
/// numeric template writes a date that reads both ways (day and month both 12 or less and
/// different) day first, the rule of every other language here, so that no text has two
/// answers.
pub fn render(date: Date, template: &str, names: &LocaleNames, style: &Style) -> String {
    let lang = names.language();
    let (m, wd) = (date.month as usize - 1, date.weekday());
    let ambiguous = date.day <= 12 && date.day != date.month && month_first_numeric(template);
    // Numbers written where the template puts the day and the month.
    let (day_no, month_no) = if ambiguous { (date.month, date.day) } else { (date.day, date.month) };
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(len) = rest[open..].find('}') else { break };
        let field = &rest[open + 1..open + len];
        rest = &rest[open + len + 1..];
        let text = match field {
            "d" => day_no.to_string(),
            "dd" => format!("{day_no:02}"),
            "o" => ordinal(lang, date.day, style.variant),
            "m" => month_no.to_string(),
            "mm" => format!("{month_no:02}"),
            "Y" => date.year.to_string(),
            "yy" => format!("{:02}", date.year.rem_euclid(100)),
            "MONTH" => names.mon[m].clone(),
            "mon" => month_abbreviation(lang, names, m, style.variant),
            "mon." => dotted(&month_abbreviation(lang, names, m, style.variant), &names.mon[m]),
            "DAY" => weekday_name(lang, names, wd, style.variant),
            "day" => names.abday[wd].clone(),
            "day." => dotted(&names.abday[wd], &names.day[wd]),
            "city" => style.city.clone(),
            "state" => style.state.clone(),
            other => format!("{{{other}}}"),
        };
        out.push_str(&text);
    }
    out.push_str(rest);
    match style.case {
        Case::AsIs => out,
        Case::Lower => out.to_lowercase(),
        Case::Upper => out.to_uppercase(),
        Case::Capitalised => {
            let mut c = out.chars();
            c.next().map(|first| first.to_uppercase().chain(c).collect()).unwrap_or_default()
        }
    }
}

/// Which part of the date range a date belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateSplit {
    /// About 90% of the dates.
    Train,
    /// About 5%.
    Valid,
    /// About 5%, never seen in training.
    Test,
}

/// The split of a date, from a hash of its day number (fixed forever).
pub fn split_of(date: Date) -> DateSplit {
    let mut h = (date.days() as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    match h % 20 {
        0 => DateSplit::Valid,
        1 => DateSplit::Test,
        _ => DateSplit::Train,
    }
}

/// Place names from a `zone.tab` (or `zone1970.tab`) text: the last part of each zone name, underscores as
/// spaces (`America/Argentina/Buenos_Aires` → `Buenos Aires`), sorted, each once.
pub fn zone_cities(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('\t').nth(2))
        .filter_map(|zone| zone.rsplit('/').next())
        .map(|c| c.replace('_', " "))
        .filter(|c| c.chars().all(|ch| ch.is_alphabetic() || ch == ' ' || ch == '-' || ch == '.') && !c.is_empty())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The date-normalisation task: locales, places, the date range and the split's dates.
#[derive(Debug, Clone)]
pub struct DateTask {
    /// The locales' names.
    pub locales: Vec<LocaleNames>,
    /// Place names of datelines.
    pub cities: Vec<String>,
    /// Each locale's training templates ([`DateTask::formats`]), built once.
    training_formats: Vec<Vec<String>>,
    /// The dates of each split, in order.
    train: Vec<Date>,
    valid: Vec<Date>,
    test: Vec<Date>,
}

/// One example: the written date and its ISO form.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// Source text.
    pub source: String,
    /// Target text.
    pub target: String,
}

impl DateTask {
    /// The task over the years [`YEARS`] with the given locales and place names.
    pub fn new(locales: Vec<LocaleNames>, cities: Vec<String>) -> Result<Self> {
        if locales.is_empty() {
            bail!("the date task needs at least one locale");
        }
        if cities.is_empty() {
            bail!("the date task needs at least one place name");
        }
        let (first, last) =
            (Date { year: YEARS.0, month: 1, day: 1 }.days(), Date { year: YEARS.1, month: 12, day: 31 }.days());
        let (mut train, mut valid, mut test) = (vec![], vec![], vec![]);
        for d in (first..=last).map(Date::from_days) {
            match split_of(d) {
                DateSplit::Train => train.push(d),
                DateSplit::Valid => valid.push(d),
                DateSplit::Test => test.push(d),
            }
        }
        let training_formats = locales.iter().map(|l| Self::formats(l, false)).collect();
        Ok(Self { locales, cities, training_formats, train, valid, test })
    }

    /// Loads `names` (default: [`DEFAULT_LOCALES`]) from `dir` (default: [`LOCALE_DIR`]) and
    /// the place names from `zones` (default: [`ZONE_TABLE`]).
    pub fn load(dir: Option<&Path>, names: &[String], zones: Option<&Path>) -> Result<Self> {
        let dir: PathBuf = dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(LOCALE_DIR));
        let names: Vec<String> =
            if names.is_empty() { DEFAULT_LOCALES.iter().map(|s| s.to_string()).collect() } else { names.to_vec() };
        let zones = zones.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(ZONE_TABLE));
        let text = std::fs::read_to_string(&zones).with_context(|| {
            format!("{}: cannot read the time-zone table (install the Debian package `tzdata`)", zones.display())
        })?;
        let cities = zone_cities(&text);
        if cities.is_empty() {
            bail!("{}: no zone names (expected tab-separated zone.tab lines)", zones.display());
        }
        Self::new(names.iter().map(|n| load_locale(&dir, n)).collect::<Result<_>>()?, cities)
    }

    /// The dates of a split.
    pub fn dates(&self, split: DateSplit) -> &[Date] {
        match split {
            DateSplit::Train => &self.train,
            DateSplit::Valid => &self.valid,
            DateSplit::Test => &self.test,
        }
    }

    /// The templates a locale is written in: its language's and every language's [`FORMATS`],
    /// and its own `d_fmt`; with `held_out`, only the held-out ones (else none of them).
    pub fn formats(names: &LocaleNames, held_out: bool) -> Vec<String> {
        let lang = names.language();
        let mut out: Vec<String> = FORMATS
            .iter()
            .filter(|f| (f.lang == "*" || f.lang == lang) && f.held_out == held_out)
            .map(|f| f.template.to_string())
            .collect();
        if !held_out
            && let Some(t) = names.d_fmt.as_deref().and_then(d_fmt_template)
            && !out.contains(&t)
        {
            out.push(t);
        }
        out
    }

    /// A random example from `split`: a locale, one of its formats, a date and a style (with
    /// `held_out`, as [`DateTask::sample_held_out`]).
    pub fn sample(&self, split: DateSplit, held_out: bool, rng: &mut Rng) -> Pair {
        if held_out {
            return self.sample_held_out(split, rng).1;
        }
        let k = rng.below(self.locales.len());
        // Never empty: every language has the shared formats.
        let formats = &self.training_formats[k];
        let template = &formats[rng.below(formats.len())];
        self.sample_written(split, &self.locales[k], template, rng)
    }

    /// The held-out formats some locale of the task writes.
    pub fn held_out_templates(&self) -> Vec<&'static Format> {
        FORMATS
            .iter()
            .filter(|f| f.held_out && (f.lang == "*" || self.locales.iter().any(|l| l.language() == f.lang)))
            .collect()
    }

    /// A random example in a held-out format: the format drawn evenly among
    /// [`DateTask::held_out_templates`] (so each weighs the same in the figure), then a locale of
    /// its language; returns the template too.
    pub fn sample_held_out(&self, split: DateSplit, rng: &mut Rng) -> (&'static str, Pair) {
        let templates = self.held_out_templates();
        let f = templates[rng.below(templates.len())];
        let locales: Vec<&LocaleNames> =
            self.locales.iter().filter(|l| f.lang == "*" || l.language() == f.lang).collect();
        let names = locales[rng.below(locales.len())];
        (f.template, self.sample_written(split, names, f.template, rng))
    }

    /// `template` written with `names` for a date of `split`: half the dates are drawn from
    /// 1900–2099, half from the whole range; a template with a two-digit year draws from
    /// [`TWO_DIGIT_YEARS`].
    fn sample_written(&self, split: DateSplit, names: &LocaleNames, template: &str, rng: &mut Rng) -> Pair {
        let dates = self.dates(split);
        let years = |(a, b): (i32, i32)| {
            let lo = dates.partition_point(|d| d.year < a);
            lo..dates.partition_point(|d| d.year <= b)
        };
        let range = if template.contains("{yy}") {
            years(TWO_DIGIT_YEARS)
        } else if rng.below(2) == 0 {
            years((1900, 2099))
        } else {
            0..dates.len()
        };
        let date = dates[range.start + rng.below(range.len())];
        let case = match rng.below(20) {
            0 | 1 => Case::Lower,
            2 | 3 => Case::Upper,
            4 | 5 => Case::Capitalised,
            _ => Case::AsIs,
        };
        let style = Style {
            case,
            city: self.cities[rng.below(self.cities.len())].clone(),
            state: US_STATES[rng.below(US_STATES.len())].to_string(),
            variant: rng.below(1 << 16) as u32,
        };
        Pair { source: render(date, template, names, &style), target: date.iso() }
    }

    /// `n` examples of `split` in the training formats, fixed by `seed`.
    pub fn fixed_set(&self, split: DateSplit, n: usize, seed: u64) -> Vec<Pair> {
        let mut rng = Rng::derive(seed, "date-set", split as u64);
        (0..n).map(|_| self.sample(split, false, &mut rng)).collect()
    }

    /// `n` test dates in the held-out formats only (never drawn in training), fixed by `seed`,
    /// each with its template.
    pub fn held_out_formats(&self, n: usize, seed: u64) -> Vec<(&'static str, Pair)> {
        let mut rng = Rng::derive(seed, "date-held-out-formats", 0);
        (0..n).map(|_| self.sample_held_out(DateSplit::Test, &mut rng)).collect()
    }

    /// Every character any rendering can contain, sorted (the source alphabet).
    pub fn alphabet(&self) -> Vec<char> {
        let mut texts: Vec<String> = vec!["0123456789".into(), "-feira Sept".into(), "º°".into()];
        texts.extend(FORMATS.iter().map(|f| f.template.replace(['{', '}'], "")));
        texts.extend(US_STATES.iter().map(|s| s.to_string()));
        texts.extend(self.cities.iter().cloned());
        for lang in ["en", "de", "fr", "es", "pt", "it", "nl", "sv"] {
            texts.extend((1..=31).flat_map(|d| (0..3).map(move |v| ordinal(lang, d, v))));
        }
        for l in &self.locales {
            texts.extend(l.mon.iter().chain(&l.abmon).chain(&l.day).chain(&l.abday).cloned());
            texts.extend(l.d_fmt.as_deref().and_then(d_fmt_template).map(|t| t.replace(['{', '}'], "")));
        }
        let mut chars: Vec<char> = Vec::new();
        for t in texts {
            for v in [t.clone(), t.to_lowercase(), t.to_uppercase()] {
                chars.extend(v.chars());
            }
        }
        chars.sort_unstable();
        chars.dedup();
        chars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_that_exist_are_read_and_others_refused() {
        assert_eq!(Date::from_iso("2000-02-29"), Some(Date { year: 2000, month: 2, day: 29 }));
        assert_eq!(Date::from_iso("1999-12-31").map(Date::iso).as_deref(), Some("1999-12-31"));
        for bad in [
            "1900-02-29",
            "2001-02-31",
            "2001-13-01",
            "2001-00-10",
            "2001-04-00",
            "200--04-04",
            "2001-4-4",
            "",
            "2001-04-04x",
            "２００１-04-04",
        ] {
            assert_eq!(Date::from_iso(bad), None, "{bad}");
        }
    }

    const FIXTURE: &str = "comment_char %\nescape_char /\n% a comment\nLC_CTYPE\ncopy \"i18n\"\nEND LC_CTYPE\n\
LC_TIME\nabday \"So\";\"Mo\";/\n  \"Di\";\"Mi\";\"Do\";\"Fr\";\"Sa\"\n\
day \"Sonntag\";\"Montag\";\"Dienstag\";\"Mittwoch\";\"Donnerstag\";\"Freitag\";\"Samstag\"\n\
abmon \"Jan\";\"Feb\";\"M<U00E4>r\";\"Apr\";\"Mai\";\"Jun\";\"Jul\";\"Aug\";\"Sep\";\"Okt\";\"Nov\";\"Dez\"\n\
mon \"Januar\";\"Februar\";/\n\"M<U00E4>rz\";\"April\";\"Mai\";\"Juni\";\"Juli\";\"August\";/\n\
\"September\";\"Oktober\";\"November\";\"Dezember\"\nd_fmt \"%d.%m.%Y\"\nEND LC_TIME\n";

    fn no_copy(name: &str) -> Result<LocaleNames> {
        bail!("no locale {name} here")
    }

    #[test]
    fn parses_lc_time_with_continuations_and_code_points() {
        let n = parse_lc_time("de_TEST", FIXTURE, &no_copy).unwrap();
        assert_eq!(n.mon[2], "März");
        assert_eq!(n.abmon[2], "Mär");
        assert_eq!(n.day[6], "Samstag");
        assert_eq!(n.abday, ["So", "Mo", "Di", "Mi", "Do", "Fr", "Sa"]);
    }

    #[test]
    fn copy_fills_the_missing_names() {
        let copying = "LC_TIME\ncopy \"de_TEST\"\nabday \"a\";\"b\";\"c\";\"d\";\"e\";\"f\";\"g\"\nEND LC_TIME\n";
        let n = parse_lc_time("x", copying, &|other| {
            assert_eq!(other, "de_TEST");
            parse_lc_time(other, FIXTURE, &no_copy)
        })
        .unwrap();
        assert_eq!(n.mon[0], "Januar");
        assert_eq!(n.abday[0], "a");
    }

    #[test]
    fn malformed_locales_are_clear_errors() {
        let err = |t: &str| parse_lc_time("bad", t, &no_copy).unwrap_err().to_string();
        assert!(err("LC_CTYPE\nEND LC_CTYPE\n").contains("no LC_TIME"));
        assert!(err("LC_TIME\nmon \"a\"\n").contains("not terminated"));
        assert!(err("LC_TIME\nmon \"a\";\"b\"\nEND LC_TIME\n").contains("`mon` has 2 names"));
        assert!(
            format!("{:#}", parse_lc_time("bad", "LC_TIME\nmon \"Jan\nEND LC_TIME\n", &no_copy).unwrap_err())
                .contains("unterminated")
        );
        assert!(
            format!("{:#}", parse_lc_time("bad", "LC_TIME\nmon \"<Uzz>\"\nEND LC_TIME\n", &no_copy).unwrap_err())
                .contains("bad code point")
        );
        assert!(load_locale(Path::new("/nonexistent"), "xx").unwrap_err().to_string().contains("locales"));
    }

    #[test]
    fn calendar_round_trips_and_knows_weekdays() {
        assert_eq!(Date { year: 1970, month: 1, day: 1 }.days(), 0);
        assert_eq!(Date { year: 2000, month: 3, day: 1 }.days(), 11_017);
        assert_eq!(Date { year: 2024, month: 2, day: 29 }.weekday(), 4); // a Thursday
        assert_eq!(Date { year: 1969, month: 7, day: 20 }.weekday(), 0); // a Sunday
        for d in -40_000..40_000 {
            assert_eq!(Date::from_days(d).days(), d);
        }
    }

    fn tiny_task() -> DateTask {
        let de = parse_lc_time("de_TEST", FIXTURE, &no_copy).unwrap();
        let en = LocaleNames {
            name: "en_TEST".into(),
            mon: [
                "January",
                "February",
                "March",
                "April",
                "May",
                "June",
                "July",
                "August",
                "September",
                "October",
                "November",
                "December",
            ]
            .map(String::from)
            .to_vec(),
            abmon: ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
                .map(String::from)
                .to_vec(),
            day: ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
                .map(String::from)
                .to_vec(),
            abday: ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].map(String::from).to_vec(),
            d_fmt: Some("%m/%d/%Y".into()),
        };
        DateTask::new(vec![de, en], vec!["Berlin".into(), "New York".into(), "Dar es Salaam".into()]).unwrap()
    }

    #[test]
    fn renders_formats_and_splits_hold_out_dates() {
        let task = tiny_task();
        let (de, en) = (&task.locales[0], &task.locales[1]);
        assert_eq!(de.d_fmt.as_deref(), Some("%d.%m.%Y"));
        let d = Date { year: 2021, month: 3, day: 7 };
        let plain = Style::plain();
        assert_eq!(render(d, "{DAY}, {d}. {MONTH} {Y}", de, &plain), "Sonntag, 7. März 2021");
        assert_eq!(render(d, "{dd}.{mm}.{yy}", de, &plain), "07.03.21");
        assert_eq!(
            render(d, "{day} {d} {mon} {Y}", de, &Style { case: Case::Upper, ..plain.clone() }),
            "SO 7 MÄR 2021"
        );
        assert_eq!(render(d, "{city}, den {o} {mon.} {Y}", de, &plain), "Berlin, den 7. Mär. 2021");
        let may = Date { year: 1945, month: 5, day: 8 };
        assert_eq!(render(may, "{d}. {mon.} {Y}", de, &plain), "8. Mai 1945", "no stop after a whole name");
        let lower = Style { case: Case::Capitalised, ..plain.clone() };
        assert_eq!(render(may, "am {d}. {MONTH} {Y}", de, &lower), "Am 8. Mai 1945");
        // English: ordinals, "Sept", datelines with a state.
        let s = Date { year: 2001, month: 9, day: 11 };
        assert_eq!(
            render(s, "{DAY}, {mon.} {o}, {Y}", en, &Style { variant: 4, ..plain.clone() }),
            "Tuesday, Sept. 11th, 2001"
        );
        assert_eq!(render(s, "{day.}, {d} {mon} {Y}", en, &plain), "Tue., 11 Sep 2001");
        let dateline = Style { city: "Washington".into(), state: "D.C.".into(), ..plain.clone() };
        let pearl = Date { year: 1941, month: 12, day: 8 };
        assert_eq!(render(pearl, "{city}, {state}, {mon.} {d}, {Y}", en, &dateline), "Washington, D.C., Dec. 8, 1941");
        assert_eq!(
            render(Date { year: 1776, month: 7, day: 4 }, "the {o} of {MONTH}, {Y}", en, &plain),
            "the 4th of July, 1776"
        );
        // Month-first numbers: only where the day is over 12 (or equals the month); a date that
        // reads both ways is written day first, so that no text has two answers.
        assert_eq!(render(Date { year: 1969, month: 7, day: 20 }, "{mm}/{dd}/{Y}", en, &plain), "07/20/1969");
        assert_eq!(render(Date { year: 1776, month: 7, day: 4 }, "{m}/{d}/{Y}", en, &plain), "4/7/1776");
        assert_eq!(render(Date { year: 1945, month: 5, day: 5 }, "{m}-{d}-{Y}", en, &plain), "5-5-1945");
        assert_eq!(d.iso(), "2021-03-07");
        let (tr, va, te) =
            (task.dates(DateSplit::Train).len(), task.dates(DateSplit::Valid).len(), task.dates(DateSplit::Test).len());
        let days =
            (Date { year: 3000, month: 1, day: 1 }.days() - Date { year: 1000, month: 1, day: 1 }.days()) as usize;
        assert_eq!(tr + va + te, days);
        assert!(te > days / 25 && te < days / 15 && va > days / 25 && va < days / 15, "{va} {te}");
        assert!(task.dates(DateSplit::Test).iter().all(|d| split_of(*d) == DateSplit::Test));
        let a = task.fixed_set(DateSplit::Test, 50, 1);
        assert_eq!(a, task.fixed_set(DateSplit::Test, 50, 1));
        let alphabet = task.alphabet();
        assert!(alphabet.contains(&':') && alphabet.contains(&'º'), "ordinal marks");
        let held: Vec<Pair> = task.held_out_formats(200, 1).into_iter().map(|(_, p)| p).collect();
        // The tiny task's two languages have three held-out formats, drawn evenly.
        assert_eq!(task.held_out_templates().len(), 3);
        assert!(a.iter().chain(&held).all(|p| p.source.chars().all(|c| alphabet.contains(&c)) && p.target.len() == 10));
        assert!(held.iter().all(|p| split_of(Date::from_iso(&p.target).unwrap()) == DateSplit::Test));
    }

    #[test]
    fn ordinals_follow_each_language() {
        let en: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31].iter().map(|&d| ordinal("en", d, 0)).collect();
        assert_eq!(en, ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st"]);
        let sv: Vec<String> = [1, 2, 3, 11, 12, 21, 22, 31].iter().map(|&d| ordinal("sv", d, 0)).collect();
        assert_eq!(sv, ["1:a", "2:a", "3:e", "11:e", "12:e", "21:a", "22:a", "31:a"]);
        assert_eq!((ordinal("fr", 1, 0), ordinal("fr", 2, 0)), ("1er".into(), "2".into()));
        assert_eq!([0, 1, 2].map(|v| ordinal("es", 1, v)), ["1º", "1.º", "1°"]);
        assert_eq!(
            (ordinal("pt", 14, 1), ordinal("de", 3, 0), ordinal("nl", 5, 0)),
            ("14".into(), "3.".into(), "5".into())
        );
    }

    #[test]
    fn locale_numeric_forms_become_templates() {
        assert_eq!(d_fmt_template("%d.%m.%Y").as_deref(), Some("{dd}.{mm}.{Y}"));
        assert_eq!(d_fmt_template("%m/%d/%y").as_deref(), Some("{mm}/{dd}/{yy}"));
        assert_eq!(d_fmt_template("%-d/%-m %Y").as_deref(), Some("{d}/{m} {Y}"));
        assert_eq!(d_fmt_template("%e.%m.%Y").as_deref(), Some("{d}.{mm}.{Y}"));
        for unusable in ["%x", "%d.%m", "%d %B %Y", "%", "%-q/%Y"] {
            assert_eq!(d_fmt_template(unusable), None, "{unusable}");
        }
        assert!(month_first_numeric("{m}/{d}/{Y}") && month_first_numeric("{mm}-{dd}-{yy}"));
        assert!(!month_first_numeric("{d}/{m}/{Y}") && !month_first_numeric("{Y}-{mm}-{dd}"));
        assert!(!month_first_numeric("{MONTH} {d}, {Y}"));
    }

    #[test]
    fn no_text_has_two_answers_and_held_out_formats_stay_out_of_training() {
        let task = tiny_task();
        let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        let mut rng = Rng::new(5);
        for i in 0..60_000 {
            let split = [DateSplit::Train, DateSplit::Valid, DateSplit::Test][i % 3];
            let p = task.sample(split, i % 7 == 0, &mut rng);
            if let Some(other) = seen.insert(p.source.clone(), p.target.clone()) {
                assert_eq!(other, p.target, "{:?} has two answers", p.source);
            }
        }
        for names in &task.locales {
            let (train, held) = (DateTask::formats(names, false), DateTask::formats(names, true));
            assert!(!held.is_empty() && train.iter().all(|t| !held.contains(t)), "{}", names.name);
            assert!(FORMATS.iter().filter(|f| f.held_out).all(|f| !train.iter().any(|t| t == f.template)));
        }
        // Two-digit years only for 1950–2049, written with the pivot rule.
        let yy = Date { year: 2049, month: 1, day: 2 };
        assert_eq!(render(yy, "{d}.{m}.{yy}", &task.locales[0], &Style::plain()), "2.1.49");
    }

    #[test]
    fn zone_names_become_places() {
        let text = "# comment\nAR\t-3436-05827\tAmerica/Argentina/Buenos_Aires\nDE,DK\t+5230+01322\tEurope/Berlin\n\
AQ\t-7750+16636\tAntarctica/McMurdo\nXX\t+0\tEtc/GMT+5\nDE\t+1\tEurope/Berlin\n";
        assert_eq!(zone_cities(text), ["Berlin", "Buenos Aires", "McMurdo"]);
        assert!(zone_cities("").is_empty());
    }

    #[test]
    fn real_glibc_locales_parse() {
        if !Path::new(LOCALE_DIR).join("de_DE").is_file() {
            eprintln!("skipped: {LOCALE_DIR} is absent (Debian package `locales`)");
            return;
        }
        if !Path::new(ZONE_TABLE).is_file() {
            eprintln!("skipped: {ZONE_TABLE} is absent (Debian package `tzdata`)");
            return;
        }
        let task = DateTask::load(None, &[], None).unwrap();
        assert!(task.cities.len() > 200 && task.cities.iter().any(|c| c == "Stockholm"), "{}", task.cities.len());
        let fr = &task.locales[2];
        assert_eq!(fr.mon[7], "août");
        assert_eq!(task.locales[1].mon[2], "März");
        assert_eq!(task.locales[0].day[3], "Wednesday");
        // Across the eight languages no text has two answers either.
        let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        let mut rng = Rng::new(9);
        for i in 0..100_000 {
            let p = task.sample(DateSplit::Train, i % 10 == 0, &mut rng);
            if let Some(other) = seen.insert(p.source.clone(), p.target.clone()) {
                assert_eq!(other, p.target, "{:?} has two answers", p.source);
            }
        }
    }
}
