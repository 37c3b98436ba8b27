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
    let mut names = LocaleNames { name: name.to_string(), mon: vec![], abmon: vec![], day: vec![], abday: vec![] };
    let mut copied: Option<LocaleNames> = None;
    for line in &lines[start + 1..start + end] {
        let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let field = match key {
            "mon" => &mut names.mon,
            "abmon" => &mut names.abmon,
            "day" => &mut names.day,
            "abday" => &mut names.abday,
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

/// The ways a date is written (names from the locale, numbers as people write them).
pub const FORMATS: [&str; 16] = [
    "{d} {MONTH} {Y}",
    "{dd} {MONTH} {Y}",
    "{d} {mon} {Y}",
    "{MONTH} {d}, {Y}",
    "{mon} {d}, {Y}",
    "{DAY}, {d} {MONTH} {Y}",
    "{DAY} {d} {MONTH} {Y}",
    "{day} {dd} {mon} {Y}",
    "{DAY}, {MONTH} {d}, {Y}",
    "{d}. {MONTH} {Y}",
    "{d} {MONTH} {yy}",
    "{dd}.{mm}.{Y}",
    "{d}.{m}.{yy}",
    "{dd}/{mm}/{Y}",
    "{Y}-{mm}-{dd}",
    "{Y}/{m}/{d}",
];

/// How the letters of a rendering are cased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// As the locale writes them.
    AsIs,
    /// All lower case.
    Lower,
    /// All upper case.
    Upper,
}

/// Writes `date` in `format` (one of [`FORMATS`]) with `names`. Two-digit years stand for
/// 1950–2049.
pub fn render(date: Date, format: &str, names: &LocaleNames, case: Case) -> String {
    let (m, wd) = (date.month as usize - 1, date.weekday());
    let out = format
        .replace("{MONTH}", &names.mon[m])
        .replace("{mon}", &names.abmon[m])
        .replace("{DAY}", &names.day[wd])
        .replace("{day}", &names.abday[wd])
        .replace("{dd}", &format!("{:02}", date.day))
        .replace("{d}", &date.day.to_string())
        .replace("{mm}", &format!("{:02}", date.month))
        .replace("{m}", &date.month.to_string())
        .replace("{Y}", &date.year.to_string())
        .replace("{yy}", &format!("{:02}", date.year.rem_euclid(100)));
    match case {
        Case::AsIs => out,
        Case::Lower => out.to_lowercase(),
        Case::Upper => out.to_uppercase(),
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

/// The date-normalisation task: locales, the date range and the split's dates.
#[derive(Debug, Clone)]
pub struct DateTask {
    /// The locales' names.
    pub locales: Vec<LocaleNames>,
    /// The dates of each split.
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
    /// The task over 1950-01-01 … 2049-12-31 with the given locales.
    pub fn new(locales: Vec<LocaleNames>) -> Result<Self> {
        if locales.is_empty() {
            bail!("the date task needs at least one locale");
        }
        let (first, last) =
            (Date { year: 1950, month: 1, day: 1 }.days(), Date { year: 2049, month: 12, day: 31 }.days());
        let (mut train, mut valid, mut test) = (vec![], vec![], vec![]);
        for d in (first..=last).map(Date::from_days) {
            match split_of(d) {
                DateSplit::Train => train.push(d),
                DateSplit::Valid => valid.push(d),
                DateSplit::Test => test.push(d),
            }
        }
        Ok(Self { locales, train, valid, test })
    }

    /// Loads `names` (default: [`DEFAULT_LOCALES`]) from `dir` (default: [`LOCALE_DIR`]).
    pub fn load(dir: Option<&Path>, names: &[String]) -> Result<Self> {
        let dir: PathBuf = dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(LOCALE_DIR));
        let names: Vec<String> =
            if names.is_empty() { DEFAULT_LOCALES.iter().map(|s| s.to_string()).collect() } else { names.to_vec() };
        Self::new(names.iter().map(|n| load_locale(&dir, n)).collect::<Result<_>>()?)
    }

    /// The dates of a split.
    pub fn dates(&self, split: DateSplit) -> &[Date] {
        match split {
            DateSplit::Train => &self.train,
            DateSplit::Valid => &self.valid,
            DateSplit::Test => &self.test,
        }
    }

    /// A random example from `split`: a date, a locale, a format and a casing.
    pub fn sample(&self, split: DateSplit, rng: &mut Rng) -> Pair {
        let dates = self.dates(split);
        let date = dates[rng.below(dates.len())];
        let names = &self.locales[rng.below(self.locales.len())];
        let format = FORMATS[rng.below(FORMATS.len())];
        let case = match rng.below(10) {
            0 => Case::Lower,
            1 => Case::Upper,
            _ => Case::AsIs,
        };
        Pair { source: render(date, format, names, case), target: date.iso() }
    }

    /// `n` examples of `split`, fixed by `seed`.
    pub fn fixed_set(&self, split: DateSplit, n: usize, seed: u64) -> Vec<Pair> {
        let mut rng = Rng::derive(seed, "date-set", split as u64);
        (0..n).map(|_| self.sample(split, &mut rng)).collect()
    }

    /// Every character any rendering can contain, sorted (the source alphabet).
    pub fn alphabet(&self) -> Vec<char> {
        let mut chars: Vec<char> = "0123456789 ,./-".chars().collect();
        for l in &self.locales {
            for s in l.mon.iter().chain(&l.abmon).chain(&l.day).chain(&l.abday) {
                for v in [s.clone(), s.to_lowercase(), s.to_uppercase()] {
                    chars.extend(v.chars());
                }
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

    #[test]
    fn renders_formats_and_splits_hold_out_dates() {
        let de = parse_lc_time("de_TEST", FIXTURE, &no_copy).unwrap();
        let d = Date { year: 2021, month: 3, day: 7 };
        assert_eq!(render(d, "{DAY}, {d}. {MONTH} {Y}", &de, Case::AsIs), "Sonntag, 7. März 2021");
        assert_eq!(render(d, "{dd}.{mm}.{yy}", &de, Case::AsIs), "07.03.21");
        assert_eq!(render(d, "{day} {d} {mon} {Y}", &de, Case::Upper), "SO 7 MÄR 2021");
        assert_eq!(d.iso(), "2021-03-07");
        let task = DateTask::new(vec![de]).unwrap();
        let (tr, va, te) =
            (task.dates(DateSplit::Train).len(), task.dates(DateSplit::Valid).len(), task.dates(DateSplit::Test).len());
        assert_eq!(tr + va + te, 36_525);
        assert!(te > 1500 && te < 2200 && va > 1500 && va < 2200, "{va} {te}");
        assert!(task.dates(DateSplit::Test).iter().all(|d| split_of(*d) == DateSplit::Test));
        let a = task.fixed_set(DateSplit::Test, 50, 1);
        assert_eq!(a, task.fixed_set(DateSplit::Test, 50, 1));
        let alphabet = task.alphabet();
        assert!(a.iter().all(|p| p.source.chars().all(|c| alphabet.contains(&c)) && p.target.len() == 10));
    }

    #[test]
    fn real_glibc_locales_parse() {
        if !Path::new(LOCALE_DIR).join("de_DE").is_file() {
            eprintln!("skipped: {LOCALE_DIR} is absent (Debian package `locales`)");
            return;
        }
        let task = DateTask::load(None, &[]).unwrap();
        let fr = &task.locales[2];
        assert_eq!(fr.mon[7], "août");
        assert_eq!(task.locales[1].mon[2], "März");
        assert_eq!(task.locales[0].day[3], "Wednesday");
    }
}
