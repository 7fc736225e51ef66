using System.Text.Json;
using System.Text.Json.Nodes;
using TaskManager.Api.Domain;

namespace TaskManager.Tests.Unit;

/// <summary>Validation of task requests per type: bounds, defaults, and errors keyed by field path.</summary>
[Trait("Category", "Unit")]
public sealed class TaskRequestValidatorTests
{
    // ---- valid requests and defaults ----

    [Theory]
    [InlineData("llm", """{"prompt":"hello"}""", """{"prompt":"hello","max_tokens":256,"stream":false}""")]
    [InlineData("sd", """{"prompt":"a cat"}""", """{"prompt":"a cat","width":512,"height":512,"steps":30,"num_images":1}""")]
    [InlineData("tts", """{"text":"hello"}""", """{"text":"hello","speed":1,"format":"wav"}""")]
    [InlineData("image_to_text", """{"image":"aGVsbG8="}""", """{"image":"aGVsbG8=","max_tokens":256}""")]
    public void MinimalInput_IsAccepted_WithTheTypesDefaultsFilledIn(string type, string input, string expected)
    {
        var request = AssertValid($$"""{"type":"{{type}}","input":{{input}}}""");

        Assert.Equal(type, request.Type);
        AssertJsonEqual(expected, request.InputJson);
    }

    [Fact]
    public void MinimalRequest_GetsTheTaskDefaults()
    {
        var request = AssertValid("""{"type":"llm","input":{"prompt":"hello"}}""");

        Assert.Equal(5, request.Priority);
        Assert.Equal(300, request.TimeoutSeconds);
        Assert.Equal(3, request.MaxAttempts);
        Assert.Null(request.Model);
        Assert.Null(request.MetadataJson);
        Assert.Null(request.Webhook);
    }

    [Fact]
    public void GivenValues_AreKeptOverTheDefaults()
    {
        var request = AssertValid("""
            {"type":"llm","model":"tiny-llama","priority":9,"timeout_seconds":60,"max_attempts":1,
             "metadata":{"user":"u1","tags":["a"]},"webhook":"https://example.com/hook",
             "input":{"prompt":"hello","max_tokens":42,"temperature":0.7,"top_p":0.9,"stop":["\n"],"stream":true}}
            """);

        Assert.Equal("tiny-llama", request.Model);
        Assert.Equal(9, request.Priority);
        Assert.Equal(60, request.TimeoutSeconds);
        Assert.Equal(1, request.MaxAttempts);
        Assert.Equal("https://example.com/hook", request.Webhook);
        AssertJsonEqual("""{"user":"u1","tags":["a"]}""", request.MetadataJson!);
        AssertJsonEqual("""{"prompt":"hello","max_tokens":42,"temperature":0.7,"top_p":0.9,"stop":["\n"],"stream":true}""", request.InputJson);
    }

    [Fact]
    public void SdInput_KeepsGivenSizesStepsAndImages()
    {
        var request = AssertValid("""
            {"type":"sd","input":{"prompt":"a cat","negative_prompt":"dogs","width":768,"height":1024,"steps":50,
             "guidance_scale":7.5,"seed":42,"num_images":4}}
            """);

        AssertJsonEqual("""
            {"prompt":"a cat","negative_prompt":"dogs","width":768,"height":1024,"steps":50,"guidance_scale":7.5,"seed":42,"num_images":4}
            """, request.InputJson);
    }

    // ---- per-type bounds: the edge values pass, one step beyond is rejected under its path ----

    [Theory]
    [InlineData("llm", "max_tokens", "1")]
    [InlineData("llm", "max_tokens", "8192")]
    [InlineData("llm", "temperature", "0")]
    [InlineData("llm", "temperature", "2")]
    [InlineData("llm", "top_p", "0")]
    [InlineData("llm", "top_p", "1")]
    [InlineData("llm", "stop", """["a","b","c","d"]""")]
    [InlineData("llm", "stream", "true")]
    [InlineData("sd", "width", "64")]
    [InlineData("sd", "width", "2048")]
    [InlineData("sd", "height", "64")]
    [InlineData("sd", "height", "2048")]
    [InlineData("sd", "steps", "1")]
    [InlineData("sd", "steps", "150")]
    [InlineData("sd", "guidance_scale", "0")]
    [InlineData("sd", "guidance_scale", "30")]
    [InlineData("sd", "num_images", "1")]
    [InlineData("sd", "num_images", "4")]
    [InlineData("tts", "speed", "0.25")]
    [InlineData("tts", "speed", "4")]
    [InlineData("tts", "format", "\"wav\"")]
    [InlineData("tts", "format", "\"mp3\"")]
    [InlineData("image_to_text", "max_tokens", "1")]
    [InlineData("image_to_text", "max_tokens", "8192")]
    public void InputField_AtItsBound_IsAcceptedAndKept(string type, string field, string value)
    {
        var request = AssertValid(Body(type, input => input[field] = JsonNode.Parse(value)));

        var input = JsonNode.Parse(request.InputJson)!;
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(value), input[field]), $"input.{field} became {input[field]?.ToJsonString()}");
    }

    [Theory]
    [InlineData("llm", "max_tokens", "0")]
    [InlineData("llm", "max_tokens", "8193")]
    [InlineData("llm", "max_tokens", "1.5")]
    [InlineData("llm", "max_tokens", "\"100\"")]
    [InlineData("llm", "temperature", "-0.01")]
    [InlineData("llm", "temperature", "2.01")]
    [InlineData("llm", "temperature", "\"warm\"")]
    [InlineData("llm", "top_p", "-0.1")]
    [InlineData("llm", "top_p", "1.01")]
    [InlineData("llm", "stop", """["a","b","c","d","e"]""")]
    [InlineData("llm", "stop", "[1]")]
    [InlineData("llm", "stop", """[""]""")]
    [InlineData("llm", "stop", "5")]
    [InlineData("llm", "stream", "\"yes\"")]
    [InlineData("sd", "width", "56")]
    [InlineData("sd", "width", "2056")]
    [InlineData("sd", "width", "100")]
    [InlineData("sd", "height", "63")]
    [InlineData("sd", "height", "2049")]
    [InlineData("sd", "height", "1020")]
    [InlineData("sd", "steps", "0")]
    [InlineData("sd", "steps", "151")]
    [InlineData("sd", "guidance_scale", "-0.5")]
    [InlineData("sd", "guidance_scale", "30.5")]
    [InlineData("sd", "num_images", "0")]
    [InlineData("sd", "num_images", "5")]
    [InlineData("tts", "speed", "0.24")]
    [InlineData("tts", "speed", "4.01")]
    [InlineData("tts", "format", "\"ogg\"")]
    [InlineData("tts", "format", "1")]
    [InlineData("image_to_text", "max_tokens", "0")]
    [InlineData("image_to_text", "max_tokens", "8193")]
    public void InputField_OutOfBoundsOrOfTheWrongType_IsRejectedUnderItsPath(string type, string field, string value)
    {
        var errors = AssertInvalid(Body(type, input => input[field] = JsonNode.Parse(value)));

        Assert.Equal([$"input.{field}"], errors.Keys);
    }

    [Theory]
    [InlineData("llm", "prompt", 1, 100_000)]
    [InlineData("sd", "prompt", 1, 2_000)]
    [InlineData("tts", "text", 1, 5_000)]
    public void TextLength_IsBounded(string type, string field, int min, int max)
    {
        AssertValid(Body(type, input => input[field] = new string('a', min)));
        AssertValid(Body(type, input => input[field] = new string('a', max)));
        Assert.Equal([$"input.{field}"], AssertInvalid(Body(type, input => input[field] = new string('a', min - 1))).Keys);
        Assert.Equal([$"input.{field}"], AssertInvalid(Body(type, input => input[field] = new string('a', max + 1))).Keys);
    }

    [Theory]
    [InlineData("sd", "prompt")]
    [InlineData("tts", "text")]
    [InlineData("image_to_text", "image")]
    public void RequiredInputField_WhenMissing_IsRejectedUnderItsPath(string type, string field)
    {
        var errors = AssertInvalid(Body(type, input => input.Remove(field)));

        Assert.Equal([$"input.{field}"], errors.Keys);
    }

    [Fact]
    public void LlmStop_AsOneString_IsAcceptedAsAListOfOne()
    {
        var request = AssertValid(Body("llm", input => input["stop"] = "###"));

        AssertJsonEqual("""["###"]""", JsonNode.Parse(request.InputJson)!["stop"]!.ToJsonString());
    }

    // ---- llm: prompt or messages ----

    [Fact]
    public void LlmMessages_WithEachRole_AreAcceptedInsteadOfAPrompt()
    {
        var request = AssertValid("""
            {"type":"llm","input":{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"},
             {"role":"assistant","content":"hello"}]}}
            """);

        var input = JsonNode.Parse(request.InputJson)!;
        Assert.Null(input["prompt"]);
        Assert.Equal(["system", "user", "assistant"], input["messages"]!.AsArray().Select(m => m!["role"]!.GetValue<string>()));
    }

    [Fact]
    public void LlmMessage_WithAnUnknownRole_IsRejectedUnderItsIndexedPath()
    {
        var errors = AssertInvalid("""
            {"type":"llm","input":{"messages":[{"role":"user","content":"hi"},{"role":"tool","content":"x"}]}}
            """);

        Assert.Equal(["input.messages[1].role"], errors.Keys);
    }

    [Theory]
    [InlineData("""{"prompt":"hi","messages":[{"role":"user","content":"hi"}]}""", "input.prompt")]
    [InlineData("""{"max_tokens":10}""", "input.prompt")]
    [InlineData("""{"messages":[]}""", "input.messages")]
    [InlineData("""{"messages":"hi"}""", "input.messages")]
    [InlineData("""{"messages":[{"role":"user"}]}""", "input.messages[0].content")]
    [InlineData("""{"messages":[{"role":"user","content":"hi","name":"bob"}]}""", "input.messages[0].name")]
    public void LlmInput_NeedsExactlyOneOfPromptAndWellFormedMessages(string input, string path)
    {
        var errors = AssertInvalid($$"""{"type":"llm","input":{{input}}}""");

        Assert.Contains(path, errors.Keys);
    }

    // ---- image_to_text: base64 up to 10 MiB decoded ----

    [Fact]
    public void Image_OfExactly10MiB_IsAccepted()
    {
        var image = Convert.ToBase64String(new byte[10 * 1024 * 1024]);

        AssertValid(Body("image_to_text", input => input["image"] = image));
    }

    [Fact]
    public void Image_OverTenMiBDecoded_IsRejected()
    {
        var image = Convert.ToBase64String(new byte[(10 * 1024 * 1024) + 1]);

        Assert.Equal(["input.image"], AssertInvalid(Body("image_to_text", input => input["image"] = image)).Keys);
    }

    [Theory]
    [InlineData("not base64!")]
    [InlineData("aGVsbG8")]
    [InlineData("data:image/png;base64,@@@@")]
    public void Image_ThatIsNotBase64_IsRejected(string image) =>
        Assert.Equal(["input.image"], AssertInvalid(Body("image_to_text", input => input["image"] = image)).Keys);

    [Fact]
    public void Image_AsABase64DataUrl_IsAccepted() =>
        AssertValid(Body("image_to_text", input => input["image"] = "data:image/png;base64,aGVsbG8="));

    // ---- task fields ----

    [Theory]
    [InlineData("priority", "0")]
    [InlineData("priority", "9")]
    [InlineData("timeout_seconds", "1")]
    [InlineData("timeout_seconds", "86400")]
    [InlineData("max_attempts", "1")]
    [InlineData("max_attempts", "10")]
    public void TaskField_AtItsBound_IsAccepted(string field, string value)
    {
        var request = AssertValid(Body("llm", task: body => body[field] = JsonNode.Parse(value)));

        var kept = field switch
        {
            "priority" => request.Priority,
            "timeout_seconds" => request.TimeoutSeconds,
            _ => request.MaxAttempts,
        };
        Assert.Equal(int.Parse(value, System.Globalization.CultureInfo.InvariantCulture), kept);
    }

    [Theory]
    [InlineData("priority", "-1")]
    [InlineData("priority", "10")]
    [InlineData("priority", "\"5\"")]
    [InlineData("priority", "5.5")]
    [InlineData("timeout_seconds", "0")]
    [InlineData("timeout_seconds", "86401")]
    [InlineData("max_attempts", "0")]
    [InlineData("max_attempts", "11")]
    [InlineData("metadata", "\"tag\"")]
    [InlineData("metadata", "[1,2]")]
    [InlineData("model", "42")]
    [InlineData("webhook", "\"ftp://example.com/x\"")]
    [InlineData("webhook", "\"not a url\"")]
    public void TaskField_OutOfBoundsOrOfTheWrongType_IsRejectedUnderItsName(string field, string value)
    {
        var errors = AssertInvalid(Body("llm", task: body => body[field] = JsonNode.Parse(value)));

        Assert.Equal([field], errors.Keys);
    }

    [Fact]
    public void Metadata_IsLimitedTo16KiBOfJson()
    {
        // Five fields "kN":"…" (7 bytes around each value), four commas and the braces: 41 bytes
        // around 16,343 bytes of values make 16 KiB exactly. No value passes the string bound.
        static JsonObject Metadata(int extra) => new()
        {
            ["k0"] = new string('a', 3268), ["k1"] = new string('a', 3268), ["k2"] = new string('a', 3268),
            ["k3"] = new string('a', 3268), ["k4"] = new string('a', 3271 + extra),
        };
        AssertValid(Body("llm", task: body => body["metadata"] = Metadata(0)));

        var errors = AssertInvalid(Body("llm", task: body => body["metadata"] = Metadata(1)));
        Assert.Equal(["metadata"], errors.Keys);
    }

    [Fact]
    public void Metadata_NestingAndStringLengths_AreBounded_AndTheErrorNamesWhere()
    {
        AssertValid("""{"type":"llm","input":{"prompt":"x"},"metadata":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}}""");

        var deep = AssertInvalid("""{"type":"llm","input":{"prompt":"x"},"metadata":{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":1}}}}}}}}}""");
        Assert.Equal(["metadata.a.b.c.d.e.f.g.h"], deep.Keys);
        var longString = AssertInvalid(Body("llm", task: body => body["metadata"] = new JsonObject { ["note"] = new JsonArray(new string('x', 4097)) }));
        Assert.Equal(["metadata.note[0]"], longString.Keys);
    }

    [Fact]
    public void UnknownFields_AreRejected_AtTheTopAndInTheInput()
    {
        var errors = AssertInvalid("""{"type":"llm","priorty":3,"input":{"prompt":"hi","max_token":10}}""");

        Assert.Equal(["input.max_token", "priorty"], errors.Keys.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("""{"input":{"prompt":"hi"}}""", "type")]
    [InlineData("""{"type":"video","input":{"prompt":"hi"}}""", "type")]
    [InlineData("""{"type":7,"input":{"prompt":"hi"}}""", "type")]
    [InlineData("""{"type":"llm"}""", "input")]
    [InlineData("""{"type":"llm","input":null}""", "input")]
    [InlineData("""{"type":"llm","input":"hi"}""", "input")]
    [InlineData("""[{"type":"llm","input":{"prompt":"hi"}}]""", "$")]
    [InlineData("""null""", "$")]
    public void MissingOrMalformedTypeOrInput_IsRejectedUnderItsName(string body, string path) =>
        Assert.Equal([path], AssertInvalid(body).Keys);

    [Fact]
    public void SeveralBadFields_AreAllReported_EachUnderItsPath()
    {
        var errors = AssertInvalid("""
            {"type":"sd","priority":42,"max_attempts":0,"colour":"red",
             "input":{"prompt":"","width":100,"steps":0,"num_images":9}}
            """);

        Assert.Equal(
            ["colour", "input.num_images", "input.prompt", "input.steps", "input.width", "max_attempts", "priority"],
            errors.Keys.Order(StringComparer.Ordinal));
        Assert.All(errors.Values, messages => Assert.All(messages, m => Assert.False(string.IsNullOrWhiteSpace(m))));
    }

    // ---- helpers ----

    private static JsonObject Minimal(string type) => type switch
    {
        "llm" => new JsonObject { ["prompt"] = "hello" },
        "sd" => new JsonObject { ["prompt"] = "a cat" },
        "tts" => new JsonObject { ["text"] = "hello" },
        "image_to_text" => new JsonObject { ["image"] = "aGVsbG8=" },
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>A minimal valid request of <paramref name="type"/>, changed by the callbacks.</summary>
    private static string Body(string type, Action<JsonObject>? input = null, Action<JsonObject>? task = null)
    {
        var inputObject = Minimal(type);
        input?.Invoke(inputObject);
        var body = new JsonObject { ["type"] = type, ["input"] = inputObject };
        task?.Invoke(body);
        return body.ToJsonString();
    }

    private static TaskRequest AssertValid(string body)
    {
        using var document = JsonDocument.Parse(body);
        var errors = TaskRequestValidator.Validate(document.RootElement, out var request);
        Assert.True(errors.Count == 0, "Unexpected errors: " + string.Join("; ", errors.Select(e => $"{e.Key}: {string.Join(" ", e.Value)}")));
        Assert.NotNull(request);
        return request;
    }

    private static Dictionary<string, string[]> AssertInvalid(string body)
    {
        using var document = JsonDocument.Parse(body);
        var errors = TaskRequestValidator.Validate(document.RootElement, out var request);
        Assert.NotEmpty(errors);
        Assert.Null(request);
        return errors;
    }

    private static void AssertJsonEqual(string expected, string actual) =>
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), JsonNode.Parse(actual)), $"Expected {expected}\n but got {actual}");
}
