namespace TaskManager.Api.Domain;

/// <summary>The kinds of inference work TaskManager coordinates.</summary>
public static class TaskTypes
{
    public const string Llm = "llm";
    public const string Sd = "sd";
    public const string Tts = "tts";
    public const string ImageToText = "image_to_text";

    public static readonly IReadOnlyList<string> All = [Llm, Sd, Tts, ImageToText];

    public static bool IsKnown(string type) => type is Llm or Sd or Tts or ImageToText;
}
