//! Text to token ids and back: a character vocabulary, and byte-pair-encoding subwords
//! (Sennrich et al. 2016) learned from a training corpus.
//!
//! Every vocabulary starts with four specials: `<pad>` 0, `<s>` 1 (start), `</s>` 2 (end),
//! `<unk>` 3. BPE works on words split at whitespace, each prefixed with `▁` (U+2581, the
//! word-start mark), so decoding is lossless up to runs of whitespace.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Padding.
pub const PAD: u32 = 0;
/// Start of sequence.
pub const BOS: u32 = 1;
/// End of sequence.
pub const EOS: u32 = 2;
/// Unknown symbol.
pub const UNK: u32 = 3;
const SPECIALS: [&str; 4] = ["<pad>", "<s>", "</s>", "<unk>"];
/// The word-start mark of BPE pieces.
pub const WORD_START: char = '\u{2581}';

/// A token ↔ id table with the four specials first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct Vocab {
    tokens: Vec<String>,
    index: HashMap<String, u32>,
}

impl From<Vec<String>> for Vocab {
    fn from(tokens: Vec<String>) -> Self {
        let index = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        Self { tokens, index }
    }
}

impl From<Vocab> for Vec<String> {
    fn from(v: Vocab) -> Self {
        v.tokens
    }
}

impl Vocab {
    /// The specials followed by `tokens` (duplicates dropped, order kept).
    pub fn new(tokens: impl IntoIterator<Item = String>) -> Self {
        let mut all: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
        for t in tokens {
            if !all.contains(&t) {
                all.push(t);
            }
        }
        Self::from(all)
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Always false: the specials are always there.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The id of `token`, or [`UNK`].
    pub fn id(&self, token: &str) -> u32 {
        self.index.get(token).copied().unwrap_or(UNK)
    }

    /// The token of `id` (`<unk>` for an id out of range).
    pub fn token(&self, id: u32) -> &str {
        self.tokens.get(id as usize).map_or(SPECIALS[UNK as usize], String::as_str)
    }
}

/// How a text becomes ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Tokenizer {
    /// One token per character.
    Chars {
        /// The characters.
        vocab: Vocab,
    },
    /// Byte-pair-encoding subwords.
    Bpe {
        /// The pieces.
        vocab: Vocab,
        /// The merges, in the order learned.
        merges: Vec<(String, String)>,
    },
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split_whitespace().map(|w| format!("{WORD_START}{w}"))
}

/// Applies `ranks` (pair → merge order) to one word's symbols, lowest rank first.
fn apply_merges(word: &str, ranks: &HashMap<(String, String), usize>) -> Vec<String> {
    let mut symbols: Vec<String> = word.chars().map(String::from).collect();
    loop {
        let best = symbols
            .windows(2)
            .enumerate()
            .filter_map(|(i, p)| ranks.get(&(p[0].clone(), p[1].clone())).map(|&r| (r, i)))
            .min();
        let Some((_, i)) = best else { break };
        let merged = format!("{}{}", symbols[i], symbols[i + 1]);
        symbols.splice(i..i + 2, [merged]);
    }
    symbols
}

impl Tokenizer {
    /// A character tokenizer over `chars`.
    pub fn chars(chars: impl IntoIterator<Item = char>) -> Self {
        Tokenizer::Chars { vocab: Vocab::new(chars.into_iter().map(String::from)) }
    }

    /// Learns `merges` BPE merges from `corpus` (deterministic: ties go to the
    /// lexicographically smallest pair). Characters seen fewer than `min_char_count` times are
    /// left out (they become `<unk>`).
    pub fn learn_bpe<'a>(corpus: impl IntoIterator<Item = &'a str>, merges: usize, min_char_count: usize) -> Self {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for line in corpus {
            for w in words(line) {
                *counts.entry(w).or_default() += 1;
            }
        }
        let mut char_counts: BTreeMap<char, usize> = BTreeMap::new();
        for (w, n) in &counts {
            for c in w.chars() {
                *char_counts.entry(c).or_default() += n;
            }
        }
        let mut pieces: Vec<String> =
            char_counts.iter().filter(|(_, n)| **n >= min_char_count.max(1)).map(|(c, _)| c.to_string()).collect();
        let mut words: Vec<(Vec<String>, usize)> =
            counts.into_iter().map(|(w, n)| (w.chars().map(String::from).collect(), n)).collect();
        // Pair counts, and which words hold each pair; a merge revisits only those words.
        type Pair = (String, String);
        let mut pairs: HashMap<Pair, usize> = HashMap::new();
        let mut holders: HashMap<Pair, Vec<usize>> = HashMap::new();
        for (k, (symbols, n)) in words.iter().enumerate() {
            for p in symbols.windows(2) {
                let pair = (p[0].clone(), p[1].clone());
                *pairs.entry(pair.clone()).or_default() += n;
                holders.entry(pair).or_default().push(k);
            }
        }
        let mut learned = Vec::new();
        for _ in 0..merges {
            let Some((best, n)) = pairs
                .iter()
                .filter(|(_, n)| **n > 0)
                .max_by(|(p, n), (q, m)| n.cmp(m).then_with(|| q.cmp(p)))
                .map(|(p, n)| (p.clone(), *n))
            else {
                break;
            };
            if n < 2 {
                break;
            }
            let merged = format!("{}{}", best.0, best.1);
            let mut touched = holders.remove(&best).unwrap_or_default();
            touched.sort_unstable();
            touched.dedup();
            for k in touched {
                let (symbols, n) = &mut words[k];
                for p in symbols.windows(2) {
                    if let Some(c) = pairs.get_mut(&(p[0].clone(), p[1].clone())) {
                        *c -= *n;
                    }
                }
                let mut i = 0;
                while i + 1 < symbols.len() {
                    if symbols[i] == best.0 && symbols[i + 1] == best.1 {
                        symbols.splice(i..i + 2, [merged.clone()]);
                    }
                    i += 1;
                }
                for p in symbols.windows(2) {
                    let pair = (p[0].clone(), p[1].clone());
                    *pairs.entry(pair.clone()).or_default() += *n;
                    holders.entry(pair).or_default().push(k);
                }
            }
            pairs.remove(&best);
            pieces.push(merged);
            learned.push(best);
        }
        Tokenizer::Bpe { vocab: Vocab::new(pieces), merges: learned }
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        match self {
            Tokenizer::Chars { vocab } | Tokenizer::Bpe { vocab, .. } => vocab,
        }
    }

    fn ranks(&self) -> HashMap<(String, String), usize> {
        match self {
            Tokenizer::Chars { .. } => HashMap::new(),
            Tokenizer::Bpe { merges, .. } => merges.iter().cloned().enumerate().map(|(i, p)| (p, i)).collect(),
        }
    }

    fn pieces_with(&self, text: &str, ranks: &HashMap<(String, String), usize>) -> Vec<String> {
        match self {
            Tokenizer::Chars { .. } => text.chars().map(String::from).collect(),
            Tokenizer::Bpe { .. } => words(text).flat_map(|w| apply_merges(&w, ranks)).collect(),
        }
    }

    /// The text's token strings.
    pub fn pieces(&self, text: &str) -> Vec<String> {
        self.pieces_with(text, &self.ranks())
    }

    /// The text's ids (no start or end marks).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_with(text, &self.ranks())
    }

    /// The ids of many texts (the merge table is built once).
    pub fn encode_all<S: AsRef<str>>(&self, texts: &[S]) -> Vec<Vec<u32>> {
        let ranks = self.ranks();
        texts.iter().map(|t| self.encode_with(t.as_ref(), &ranks)).collect()
    }

    fn encode_with(&self, text: &str, ranks: &HashMap<(String, String), usize>) -> Vec<u32> {
        let vocab = self.vocab();
        match self {
            Tokenizer::Chars { .. } => text.chars().map(|c| vocab.id(c.encode_utf8(&mut [0; 4]))).collect(),
            Tokenizer::Bpe { .. } => self
                .pieces_with(text, ranks)
                .iter()
                .flat_map(|p| match vocab.id(p) {
                    // A piece absent from the vocabulary (a rare character): fall back to its
                    // characters, each known or `<unk>`.
                    UNK => p.chars().map(|c| vocab.id(c.encode_utf8(&mut [0; 4]))).collect::<Vec<_>>(),
                    id => vec![id],
                })
                .collect(),
        }
    }

    /// The text of `ids`, stopping at the first [`EOS`] and skipping the other specials.
    pub fn decode(&self, ids: &[u32]) -> String {
        let vocab = self.vocab();
        let mut out = String::new();
        for &id in ids {
            match id {
                EOS => break,
                PAD | BOS => {}
                _ => out.push_str(vocab.token(id)),
            }
        }
        match self {
            Tokenizer::Chars { .. } => out,
            Tokenizer::Bpe { .. } => {
                out.split(WORD_START).filter(|w| !w.is_empty()).map(str::trim).collect::<Vec<_>>().join(" ")
            }
        }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.vocab().len()
    }

    /// Always false.
    pub fn is_empty(&self) -> bool {
        self.vocab().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn chars_round_trip_and_unknowns() {
        let t = Tokenizer::chars("abc -".chars());
        assert_eq!(t.len(), 4 + 5);
        let ids = t.encode("ab-c");
        assert_eq!(t.decode(&ids), "ab-c");
        assert_eq!(t.encode("z"), vec![UNK]);
        let mut with_end = ids.clone();
        with_end.extend([EOS, 5]);
        assert_eq!(t.decode(&with_end), "ab-c");
    }

    #[test]
    fn bpe_learns_frequent_pieces_deterministically() {
        let corpus = ["the cat sat on the mat", "the hat is on the cat", "a rat"];
        let t = Tokenizer::learn_bpe(corpus.iter().copied(), 20, 1);
        assert_eq!(t, Tokenizer::learn_bpe(corpus.iter().copied(), 20, 1));
        // `▁the` occurs 4 times: it becomes one piece.
        assert!(t.pieces("the cat").contains(&format!("{WORD_START}the")), "{:?}", t.pieces("the cat"));
        for line in corpus {
            assert_eq!(t.decode(&t.encode(line)), line);
        }
        // Unseen characters become <unk>, the rest still decodes.
        let ids = t.encode("the zebra");
        assert!(ids.contains(&UNK));
        assert!(t.decode(&ids).starts_with("the "));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Tokenizer>(&json).unwrap(), t);
    }

    proptest! {
        #[test]
        fn bpe_round_trips_text_made_of_known_characters(words in proptest::collection::vec("[a-e]{1,6}", 1..8)) {
            let corpus = ["abcde edcba", "aab bba cab", "deed bead cade"];
            let t = Tokenizer::learn_bpe(corpus.iter().copied(), 15, 1);
            let line = words.join(" ");
            prop_assert_eq!(t.decode(&t.encode(&line)), line);
        }
    }
}
