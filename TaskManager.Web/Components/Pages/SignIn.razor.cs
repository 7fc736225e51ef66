using Microsoft.AspNetCore.Components;
using TaskManager.Web.Services;

namespace TaskManager.Web.Components.Pages;

/// <summary>
/// Signs in with a key: the API says whether it knows the key and whether it is an admin's; the
/// key then lives in the encrypted, HttpOnly session cookie, and the page never holds it.
/// </summary>
public partial class SignIn
{
    [CascadingParameter]
    private HttpContext HttpContext { get; set; } = default!;

    [SupplyParameterFromForm]
    private SignInForm? Input { get; set; }

    [SupplyParameterFromQuery]
    private string? ReturnUrl { get; set; }

    private string? error;

    protected override void OnInitialized() => Input ??= new();

    private async Task SignInAsync()
    {
        var key = Input!.Key?.Trim() ?? "";
        var caller = key.Length == 0 ? null : await Api.CallerOfAsync(key, HttpContext.RequestAborted);
        if (caller is null)
        {
            error = "The API refused this key.";
            return;
        }
        await ConsoleSetup.SignInAsync(HttpContext, key, caller);
        var target = (Input.ReturnUrl ?? "").TrimStart('/');
        // Only a path of this site: an address elsewhere would make the sign-in an open redirect.
        var local = !target.Contains(':') && !target.StartsWith('/') && !target.Contains('\\');
        Navigation.NavigateTo(local ? "/" + target : "/");
    }

    private sealed class SignInForm
    {
        public string? Key { get; set; }

        public string? ReturnUrl { get; set; }
    }
}
