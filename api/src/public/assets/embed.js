// Embeds an invitation (or a legacy link) in an integrator's page:
//
//   <script src="https://GATEWAY/p/embed.js"></script>
//   InvitationsEmbed.open({
//     url: invitationUrl,                       // from createContributorInvitation / ...
//     container: document.getElementById("x"),  // inline; omit for a modal dialog
//     onLoaded: function (event) {},
//     onSubmitted: function (event) {},         // event.invitationId, event.connectionId
//     onExit: function (event) {},              // event.reason: USER_EXIT or CLOSED
//     onError: function (event) {}              // event.reason: EXPIRED, REVOKED, FULFILLED, ...
//   });
//
// The page only shows inside an origin listed in the organization's `allowedEmbedOrigins`, and
// only posts its events to that origin. Messages are accepted here only from the frame this
// call created and only from the gateway's origin.
(function () {
  "use strict";
  if (window.InvitationsEmbed) return;

  var HANDLERS = {
    "invitation.loaded": "onLoaded",
    "invitation.submitted": "onSubmitted",
    "invitation.exit": "onExit",
    "invitation.error": "onError"
  };

  function call(options, name, event) {
    if (typeof options[name] === "function") {
      try { options[name](event); } catch (e) { setTimeout(function () { throw e; }); }
    }
  }

  function open(options) {
    if (!options || !options.url) throw new Error("InvitationsEmbed.open: `url` is required");
    var src = new URL(options.url, window.location.href);
    var gatewayOrigin = src.origin;
    // Browsers that do not expose the parent's origin to the frame learn it from here; the
    // page still checks it against the organization's list.
    src.searchParams.set("embedOrigin", window.location.origin);

    var frame = document.createElement("iframe");
    frame.src = src.toString();
    frame.title = options.title || "Connect your utility account";
    frame.setAttribute("referrerpolicy", "origin");
    frame.style.border = "0";
    frame.style.width = "100%";
    frame.style.height = options.height || "44rem";
    frame.style.display = "block";

    var overlay = null;
    var previousFocus = document.activeElement;
    var closed = false;

    function onMessage(ev) {
      if (ev.source !== frame.contentWindow || ev.origin !== gatewayOrigin) return;
      var data = ev.data || {};
      var handler = HANDLERS[data.type];
      if (!handler) return;
      call(options, "onEvent", data);
      call(options, handler, data);
      if (data.type === "invitation.exit" && overlay) close();
    }

    function onKey(ev) {
      if (ev.key === "Escape") { close(); call(options, "onExit", { type: "invitation.exit", reason: "CLOSED" }); }
    }

    function close() {
      if (closed) return;
      closed = true;
      window.removeEventListener("message", onMessage);
      if (overlay) {
        document.removeEventListener("keydown", onKey);
        overlay.parentNode && overlay.parentNode.removeChild(overlay);
        if (previousFocus && previousFocus.focus) previousFocus.focus();
      } else if (frame.parentNode) {
        frame.parentNode.removeChild(frame);
      }
    }

    window.addEventListener("message", onMessage);

    if (options.container) {
      options.container.appendChild(frame);
    } else {
      overlay = document.createElement("div");
      overlay.style.cssText = "position:fixed;inset:0;z-index:2147483000;background:rgba(15,20,25,.55);" +
        "display:flex;align-items:center;justify-content:center;padding:1rem;box-sizing:border-box";
      var dialog = document.createElement("div");
      dialog.setAttribute("role", "dialog");
      dialog.setAttribute("aria-modal", "true");
      dialog.setAttribute("aria-label", frame.title);
      dialog.style.cssText = "position:relative;width:100%;max-width:36rem;max-height:100%;overflow:auto;" +
        "background:#f6f7f9;border-radius:12px";
      var closeButton = document.createElement("button");
      closeButton.type = "button";
      closeButton.textContent = "×";
      closeButton.setAttribute("aria-label", "Close");
      closeButton.style.cssText = "position:absolute;top:.4rem;right:.4rem;font-size:1.5rem;line-height:1;" +
        "padding:.2rem .6rem;border:0;border-radius:6px;background:#fff;color:#1b1f24;cursor:pointer";
      closeButton.addEventListener("click", function () {
        close();
        call(options, "onExit", { type: "invitation.exit", reason: "CLOSED" });
      });
      dialog.appendChild(frame);
      dialog.appendChild(closeButton);
      overlay.appendChild(dialog);
      document.body.appendChild(overlay);
      document.addEventListener("keydown", onKey);
      frame.focus();
    }

    return { close: close, iframe: frame };
  }

  window.InvitationsEmbed = { open: open };
})();
