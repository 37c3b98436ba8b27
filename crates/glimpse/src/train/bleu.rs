//! Corpus BLEU (Papineni et al. 2002): the geometric mean of the modified (clipped) 1- to
//! 4-gram precisions over the whole corpus, times the brevity penalty
//! `BP = min(1, exp(1 − r/c))` (`r`, `c`: reference and candidate token counts). One reference
//! per sentence; no smoothing (a corpus with no matching 4-gram scores 0). Text is tokenised
//! like sacreBLEU's `13a` rule set, reduced to the cases that occur in plain text: punctuation
//! and symbols become tokens of their own, except `.`/`,` between digits.

use std::collections::HashMap;

/// Splits text into BLEU tokens.
pub fn tokenize(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let digit_around = |j: Option<usize>| j.and_then(|j| chars.get(j)).is_some_and(|d| d.is_ascii_digit());
        let numeric_sep = (c == '.' || c == ',') && digit_around(i.checked_sub(1)) && digit_around(Some(i + 1));
        if c.is_whitespace() {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
        } else if (c.is_ascii_punctuation() || "’‘“”„«»–—…".contains(c)) && !numeric_sep && c != '\'' && c != '’'
            || (c == '-' && !word.is_empty())
        {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            out.push(c.to_string());
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// A BLEU score and its parts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Bleu {
    /// BLEU × 100.
    pub score: f64,
    /// Modified n-gram precisions, n = 1…4.
    pub precisions: [f64; 4],
    /// Brevity penalty.
    pub brevity_penalty: f64,
    /// Candidate tokens.
    pub hyp_len: usize,
    /// Reference tokens.
    pub ref_len: usize,
}

fn ngrams(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut m = HashMap::new();
    for g in tokens.windows(n) {
        *m.entry(g).or_default() += 1;
    }
    m
}

/// Corpus BLEU of tokenised candidates against one tokenised reference each.
pub fn corpus_bleu(candidates: &[Vec<String>], references: &[Vec<String>]) -> Bleu {
    bleu_with(candidates, references, false)
}

/// Corpus BLEU with sacreBLEU's `exp` smoothing: the k-th n-gram order with no match counts
/// as a precision of `1 / (2^k · total)` instead of 0, so small or poorly translated subsets
/// (the long-sentence bucket of a weak model) still compare. Equal to [`corpus_bleu`] whenever
/// every order has a match.
pub fn corpus_bleu_smoothed(candidates: &[Vec<String>], references: &[Vec<String>]) -> Bleu {
    bleu_with(candidates, references, true)
}

fn bleu_with(candidates: &[Vec<String>], references: &[Vec<String>], smooth: bool) -> Bleu {
    assert_eq!(candidates.len(), references.len(), "one reference per candidate");
    let mut matched = [0usize; 4];
    let mut total = [0usize; 4];
    let (mut c_len, mut r_len) = (0, 0);
    for (c, r) in candidates.iter().zip(references) {
        c_len += c.len();
        r_len += r.len();
        for n in 1..=4 {
            let (cn, rn) = (ngrams(c, n), ngrams(r, n));
            matched[n - 1] += cn.iter().map(|(g, k)| (*k).min(rn.get(g).copied().unwrap_or(0))).sum::<usize>();
            total[n - 1] += c.len().saturating_sub(n - 1);
        }
    }
    let mut zeros = 1.0;
    let precisions: [f64; 4] = std::array::from_fn(|i| {
        if total[i] == 0 {
            0.0
        } else if matched[i] == 0 && smooth {
            zeros *= 2.0;
            1.0 / (zeros * total[i] as f64)
        } else {
            matched[i] as f64 / total[i] as f64
        }
    });
    let brevity_penalty = if c_len == 0 {
        0.0
    } else if c_len >= r_len {
        1.0
    } else {
        (1.0 - r_len as f64 / c_len as f64).exp()
    };
    let score = if precisions.contains(&0.0) {
        0.0
    } else {
        100.0 * brevity_penalty * (precisions.iter().map(|p| p.ln()).sum::<f64>() / 4.0).exp()
    };
    Bleu { score, precisions, brevity_penalty, hyp_len: c_len, ref_len: r_len }
}

/// Corpus BLEU of raw texts (tokenised with [`tokenize`]); `smooth` as in
/// [`corpus_bleu_smoothed`].
pub fn corpus_bleu_text(candidates: &[String], references: &[String], smooth: bool) -> Bleu {
    let tok = |v: &[String]| v.iter().map(|s| tokenize(s)).collect::<Vec<_>>();
    bleu_with(&tok(candidates), &tok(references), smooth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn identical_corpus_scores_100() {
        let r = vec![t("the cat sat on the mat")];
        let b = corpus_bleu(&r, &r);
        assert!((b.score - 100.0).abs() < 1e-9);
        assert_eq!(b.brevity_penalty, 1.0);
    }

    /// Papineni et al.'s clipping example: "the the the the the the the" against "the cat is on
    /// the mat" has unigram precision 2/7.
    #[test]
    fn clipped_unigram_precision_of_the_paper() {
        let b = corpus_bleu(&[t("the the the the the the the")], &[t("the cat is on the mat")]);
        assert!((b.precisions[0] - 2.0 / 7.0).abs() < 1e-12);
        assert_eq!(b.precisions[1], 0.0);
        assert_eq!(b.score, 0.0);
    }

    /// Worked by hand: candidate "the cat sat on the mat today" (7 tokens) vs reference
    /// "the cat sat on a mat" (6): matches 1-grams 5/7 (the, cat, sat, on, mat; the second
    /// "the" is clipped), 2-grams 3/6 (the cat, cat sat, sat on), 3-grams 2/5, 4-grams 1/4;
    /// BP = 1; BLEU = (5/7 · 3/6 · 2/5 · 1/4)^(1/4) = 0.4347…
    #[test]
    fn hand_computed_sentence() {
        let b = corpus_bleu(&[t("the cat sat on the mat today")], &[t("the cat sat on a mat")]);
        assert_eq!(b.precisions, [5.0 / 7.0, 3.0 / 6.0, 2.0 / 5.0, 1.0 / 4.0]);
        let expect = 100.0 * (5.0f64 / 7.0 * 0.5 * 0.4 * 0.25).powf(0.25);
        assert!((b.score - expect).abs() < 1e-9, "{} vs {expect}", b.score);
        assert!((b.score - 43.47).abs() < 0.01);
    }

    /// Brevity: candidate "the cat sat on" (4) vs "the cat sat on the mat" (6): all precisions
    /// 1, BP = exp(1 − 6/4) = 0.6065…; counts are pooled over the corpus, not averaged.
    #[test]
    fn brevity_penalty_and_corpus_pooling() {
        let b = corpus_bleu(&[t("the cat sat on")], &[t("the cat sat on the mat")]);
        assert!((b.score - 100.0 * (-0.5f64).exp()).abs() < 1e-9);
        let c = corpus_bleu(
            &[t("the cat sat on"), t("a dog ran in the park")],
            &[t("the cat sat on the mat"), t("a dog ran in the park")],
        );
        // 1-grams 10/10, 2-grams 8/8, 3-grams 6/6, 4-grams 4/4; c = 10, r = 12.
        assert!((c.score - 100.0 * (1.0f64 - 12.0 / 10.0).exp()).abs() < 1e-9);
        assert_eq!((c.hyp_len, c.ref_len), (10, 12));
    }

    /// "a b c d" against "a b x d": 3/4 unigrams, 1/3 bigrams, no 3- or 4-gram match, so
    /// standard BLEU is 0; exp smoothing counts the missing orders as 1/(2·2) and 1/(4·1).
    #[test]
    fn exp_smoothing_of_missing_orders() {
        let (c, r) = (vec![t("a b c d")], vec![t("a b x d")]);
        assert_eq!(corpus_bleu(&c, &r).score, 0.0);
        let s = corpus_bleu_smoothed(&c, &r);
        assert_eq!(s.precisions, [3.0 / 4.0, 1.0 / 3.0, 1.0 / 4.0, 1.0 / 4.0]);
        let expect = 100.0 * (0.75f64 / 3.0 / 4.0 / 4.0).powf(0.25);
        assert!((s.score - expect).abs() < 1e-9);
        let same = vec![t("the cat sat on the mat today")];
        assert_eq!(corpus_bleu_smoothed(&same, &same).score, corpus_bleu(&same, &same).score);
    }

    #[test]
    fn tokenizer_splits_punctuation_but_not_numbers_or_contractions() {
        assert_eq!(tokenize("I’m losing my patience."), ["I’m", "losing", "my", "patience", "."]);
        assert_eq!(tokenize("It costs 3.50 euros, ok?"), ["It", "costs", "3.50", "euros", ",", "ok", "?"]);
        assert_eq!(tokenize("\"Hi\" (well)"), ["\"", "Hi", "\"", "(", "well", ")"]);
    }
}
