"""Stage `align`: dlib face detection + landmarks, then the FFHQ crop, with the transform kept for paste-back."""
