"""A stand-in for the parts of transformers the transformers backend uses: a "model" that says a
fixed script of words, one token each, through the streamer, checking the stopping criteria
between tokens as generate() does, in the calling thread."""

import time

import torch

__version__ = "4.57.0"
EOS = 0
SCRIPTS = {  # model name -> the words it generates, then EOS if "<eos>" ends the list
    "talker": ["Hello", "world,", "this", "is", "STOP", "and", "more", "words", "<eos>"],
    "endless": ["la"] * 100_000,
}
TOKEN_SECONDS = {"endless": 0.005}
loads = []  # (source, kwargs) of each model load


class StoppingCriteria:
    pass


class StoppingCriteriaList(list):
    def __call__(self, ids, scores):
        return any(any(criterion(ids, scores)) for criterion in self)


class _Tokenizer:
    chat_template = None
    eos_token_id = EOS
    pad_token_id = None

    def __init__(self):
        self.words = ["<eos>"]

    def id(self, word):
        if word not in self.words:
            self.words.append(word)
        return self.words.index(word)

    def __call__(self, text, return_tensors=None, add_special_tokens=True):
        ids = [self.id(word) for word in text.split()]
        return {"input_ids": torch.Tensor([ids]), "attention_mask": torch.Tensor([[1] * len(ids)])}

    def decode(self, ids, skip_special_tokens=False):
        return " ".join(self.words[i] for i in ids if not (skip_special_tokens and i == EOS))


class AutoTokenizer:
    @staticmethod
    def from_pretrained(source, **kwargs):
        return _Tokenizer()


class _Model:
    def __init__(self, name):
        self.name = name
        self.generation_config = type("GenerationConfig", (), {"eos_token_id": EOS})()

    def to(self, device):
        return self

    def eval(self):
        return self

    def generate(self, input_ids, streamer, stopping_criteria, max_new_tokens, attention_mask=None, **kwargs):
        tokenizer = streamer.tokenizer
        ids = list(input_ids.rows[0])
        streamer.put(input_ids)
        for word in SCRIPTS[self.name][:max_new_tokens]:
            time.sleep(TOKEN_SECONDS.get(self.name, 0))
            ids.append(EOS if word == "<eos>" else tokenizer.id(word))
            streamer.put(ids[-1])
            if word == "<eos>" or stopping_criteria(torch.Tensor([ids]), None):
                break
        streamer.end()
        return torch.Tensor([ids])


class AutoModelForCausalLM:
    @staticmethod
    def from_pretrained(source, **kwargs):
        loads.append((source, kwargs))
        name = source.rsplit("/", 1)[-1]
        if name not in SCRIPTS:
            raise OSError(f"{source} is not a local folder and is not a valid model identifier")
        return _Model(name)


class TextStreamer:
    """Like transformers': generate() puts the prompt first, then each new token; the text goes to
    on_finalized_text (here one word a token, with a space before all but the first)."""

    def __init__(self, tokenizer, skip_prompt=False, **decode_kwargs):
        self.tokenizer = tokenizer
        self.skip_prompt = skip_prompt
        self.decode_kwargs = decode_kwargs
        self.next_is_prompt = True
        self.first = True

    def put(self, value):
        if self.skip_prompt and self.next_is_prompt:
            self.next_is_prompt = False
            return
        text = self.tokenizer.decode([value], **self.decode_kwargs)
        if text:
            self.on_finalized_text(text if self.first else " " + text)
            self.first = False

    def end(self):
        self.on_finalized_text("", stream_end=True)

    def on_finalized_text(self, text, stream_end=False):
        print(text, end="" if not stream_end else None)
